/** Writes the README's configuration reference tables from the code's schemas (config/reference.ts). */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { PACKAGE_ROOT } from '../config/paths.js';
import { withReferenceTables } from '../cli/reference.js';

const path = join(PACKAGE_ROOT, 'README.md');
writeFileSync(path, withReferenceTables(readFileSync(path, 'utf8')));
