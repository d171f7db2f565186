#!/usr/bin/env -S node --initial-old-space-size=56
// The flag is here because Node refuses it in NODE_OPTIONS. V8 counts the memory outside its heap that a
// receiver allocates (the websocket's buffer per message and a buffer per socket read: ~2 bytes per byte
// received) against the old generation's limit, and a receiver's first limit is ~20 MB. Receiving a big
// file then ran a full mark-compact every ~15 MB, ~70 per GiB. With a first limit of 56 MB: none over
// 3 GiB, and ~35% less CPU per GiB on the receiver's main thread (bench/RESULTS.md). 40 still ran ~50 per
// GiB and 48 one or two per 3 GiB; 64 made the heap grow to ~125 MB of RSS on small files (56: ~118).
// `node relay-receiver.js` without the flag works the same, only with that cost.
import "../dist/cli.js";
