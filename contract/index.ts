/**
 * The contract between workflows and activities: requests and results, the records in the
 * store and their keys, progress, message definitions and the failure vocabulary. Free of Node
 * imports, so workflow code imports it; activities, workers and clients import it too.
 */
export * from './activities.js';
export * from './failures.js';
export * from './keys.js';
export * from './progress.js';
export * from './records.js';
export * from './workers.js';
export * from './workflows.js';
export * from './lines.js';
