/** For users' own workers: the plugin, the dependencies it needs, tracing, the task queues and search attributes. */
export { selfRewardPlugin, SelfRewardPlugin, WORKFLOWS_PATH, type SelfRewardPluginOptions } from './plugin.js';
export { dependenciesFromEnvironment } from './dependencies.js';
export { startTracing, type Tracing, type WorkerTracing } from '../observability/tracing.js';
export { tracingFromEnvironment, type TracingSettings } from '../config/tracing.js';
export { TASK_QUEUES, type WorkerRole } from '../contract/workers.js';
export { SEARCH_ATTRIBUTES, SEARCH_ATTRIBUTE_FLAGS } from '../config/searchAttributes.js';
