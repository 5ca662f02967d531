#!/usr/bin/env node
import '../dist/stowage.mjs';
