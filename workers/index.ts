/** For users' own workers: the plugin, the dependencies it needs, the task queues and search attributes. */
export { selfRewardPlugin, SelfRewardPlugin, WORKFLOWS_PATH, type SelfRewardPluginOptions } from './plugin.js';
export { dependenciesFromEnvironment } from './dependencies.js';
export { TASK_QUEUES, type WorkerRole } from '../contract/workers.js';
export { SEARCH_ATTRIBUTES, SEARCH_ATTRIBUTE_FLAGS } from '../config/searchAttributes.js';
