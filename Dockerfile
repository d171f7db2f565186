# Relayer: one image for both agents. `relay-receiver` is the default command; `relay-sender` and the
# `relay` CLI are in the same image. Runs as a non-root user (uid:gid 1000:1000 unless built otherwise).
#
#   docker build -t relayer:latest .                                    # on the nodes' architecture, or:
#   docker buildx build --platform linux/amd64,linux/arm64,linux/arm/v7 -t <registry>/relayer:latest --push .
#   docker build --build-arg RELAY_UID=1001 --build-arg RELAY_GID=1001 -t relayer:latest .
#
# Build arguments:
#   NODE_IMAGE  the Node 20 base image (default node:20-bookworm-slim).
#   RELAY_UID / RELAY_GID  the default user (a Swarm service can still override it with `user:`).
#   APP_FROM    "build" (default): `npm ci`, compile and prune inside the build (needs the npm registry).
#               "prebuilt": the build context is a tree already installed, compiled and pruned the same
#               way on the host (test/swarm/stage-app.sh makes one), for builds that cannot reach npm.
#               Needs BuildKit (the default builder of current Docker; DOCKER_BUILDKIT=1 on 20.10), which
#               builds only the stages the final image uses.
ARG NODE_IMAGE=node:20-bookworm-slim
ARG APP_FROM=build

FROM ${NODE_IMAGE} AS build
WORKDIR /app
# Manifests first, so a source change does not re-run the install.
COPY package.json package-lock.json tsconfig.json tsconfig.base.json ./
COPY common/package.json common/
COPY agent-receiver/package.json agent-receiver/
COPY agent-sender/package.json agent-sender/
COPY test/package.json test/
# --ignore-scripts: the `prepare` (tsc -b) runs below, once the sources are there. The optional native
# modules need no install script: bufferutil and msgpackr-extract load prebuilt binaries when they exist
# for the platform, and otherwise the JavaScript fallbacks are used, so no build tools are needed on arm.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY common/ common/
COPY agent-receiver/ agent-receiver/
COPY agent-sender/ agent-sender/
# The same steps as test/swarm/stage-app.sh: compile the agents, drop dev dependencies and sources.
RUN npx tsc -b common agent-receiver agent-sender \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && rm -rf common/src agent-receiver/src agent-sender/src ./*/tsconfig*.json ./tsconfig*.json ./*/*.tsbuildinfo
# An empty folder to copy as the receiver's default data folder (the final stage runs no command).
WORKDIR /data

FROM ${NODE_IMAGE} AS prebuilt
COPY . /app/
WORKDIR /data

FROM ${APP_FROM} AS app

FROM ${NODE_IMAGE}
ARG RELAY_UID=1000
ARG RELAY_GID=1000
# Owned by root and read-only for the agents' user: the agents write only to their data folder and socket.
COPY --from=app /app /app
# The receiver's default folder, the agents' user's: a container without a volume, or with a new named
# volume (which takes the folder's owner), can write there. A bind-mounted host folder keeps its own owner.
COPY --from=app --chown=${RELAY_UID}:${RELAY_GID} /data /data
# NODE_OPTIONS: a smaller V8 heap that is collected sooner. Semi-spaces of 2 MiB (default 16) and an old
# generation limit of 1 GB (default: a quarter of RAM, up to 4 GB), under which V8 grows the heap by smaller
# steps: a sender agent moving 10,000 small files peaks at ~110 MB RSS instead of 150–175 MB, for the same
# CPU (bench/RESULTS.md). The agents live on ~30 MB of heap even during a 100,000-file send; 1 GB is a
# ceiling no workload comes near, not a budget. swarm-stack.yml gives the receiver service semi-spaces of
# 4 MiB instead: a receiver taking small files spends a quarter of its main thread collecting garbage with 2.
# relay-receiver also execs Node on itself with --initial-old-space-size=56 (a flag NODE_OPTIONS refuses):
# without it a receiver ran ~70 full collections per GiB received.
ENV PATH=/app/node_modules/.bin:$PATH NODE_ENV=production RELAY_DIR=/data \
    NODE_OPTIONS="--max-semi-space-size=2 --max-old-space-size=1024"
WORKDIR /data
USER ${RELAY_UID}:${RELAY_GID}
EXPOSE 7420
# Short interval and a start period, so a restarted agent is back in service (and in tasks.<service> DNS)
# within seconds. With RELAY_SOCKET set (the sender agent) it asks the agent through its socket: healthy when
# the agent answers (`relay status` exits 0, or 1 when a receiver is down: that is the receiver's health, not
# the agent's; 3 when the agent does not answer); otherwise it asks the receiver's /healthz. swarm-stack.yml
# sets the same checks per service.
HEALTHCHECK --interval=5s --timeout=5s --start-period=20s --retries=3 \
  CMD if [ -n "$RELAY_SOCKET" ]; then relay status >/dev/null 2>&1; [ $? -le 1 ]; \
      else node -e "fetch('http://127.0.0.1:'+(process.env.RELAY_PORT||7420)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"; fi
CMD ["relay-receiver"]
