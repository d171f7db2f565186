#!/usr/bin/env -S node --initial-old-space-size=64
// The flag is here because Node refuses it in NODE_OPTIONS. V8 counts the memory outside its heap that a
// receiver allocates (the websocket's buffer per message and a buffer per socket read: ~2 bytes per byte
// received) against the old generation's limit, and a receiver's first limit is ~20 MB. Receiving a big
// file then ran a full mark-compact every ~15 MB, ~70 per GiB; with a first limit of 64 MB, none, and
// ~35% less CPU per GiB on the receiver's main thread (bench/RESULTS.md). `node relay-receiver.js` without
// the flag works the same, only with that cost.
import "../dist/cli.js";
