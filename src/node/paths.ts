// Where the package lives (configs/, models/, assets/, .cache/ are found relative to it).
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// In a web page the modules come over HTTP and there is no package folder: '' (nothing reads it there).
export const PACKAGE_ROOT = import.meta.url.startsWith('file:') ? resolve(dirname(fileURLToPath(import.meta.url)), '../..') : '';
