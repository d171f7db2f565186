# One image for both agents. Build on the target architecture (e.g. on a Raspberry Pi for arm64):
#   docker build -t relayer:latest .
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY . .
RUN npm ci && npm prune --omit=dev --ignore-scripts

FROM node:20-bookworm-slim
WORKDIR /app
COPY --from=build /app /app
ENV PATH=/app/node_modules/.bin:$PATH NODE_ENV=production
EXPOSE 7420
# relay-receiver by default; the sender service runs `relay-sender`.
CMD ["relay-receiver"]
