#!/usr/bin/env node
import "../dist/cli/relay-sender.js";
