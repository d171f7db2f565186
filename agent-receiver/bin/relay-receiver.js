#!/bin/sh
":" //; exec node --initial-old-space-size=56 "$0" "$@"
// The line above is sh and JavaScript at once: sh runs it and execs Node on this same file with the flag
// (the same process, so signals and the exit code are Node's); Node reads a string and a comment. The flag
// cannot go in NODE_OPTIONS (Node refuses it there), and `#!/usr/bin/env -S node …` needs an env with -S,
// which BusyBox (Alpine images) and coreutils before 8.30 lack.
//
// Why the flag: V8 counts the memory outside its heap that a receiver allocates (the websocket's buffer per
// message and a buffer per socket read: ~2 bytes per byte received) against the old generation's limit,
// and a receiver's first limit is ~20 MB. Receiving a big file then ran a full mark-compact every ~15 MB,
// ~70 per GiB. With a first limit of 56 MB: none over 3 GiB, and ~35% less CPU per GiB on the receiver's
// main thread (bench/RESULTS.md). 40 still ran ~50 per GiB and 48 one or two per 3 GiB; 64 made the heap
// grow to ~125 MB of RSS on small files (56: ~118). `node relay-receiver.js` works the same without it.
import "../dist/cli/relay-receiver.js";
