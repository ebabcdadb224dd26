/** For users' own workers: the plugin, the dependencies it needs and the task queues. */
export { selfRewardPlugin, dependenciesFromEnvironment, WORKFLOWS_PATH } from './setup.js';
export { TASK_QUEUES } from '../config/queues.js';
export { SEARCH_ATTRIBUTES, SEARCH_ATTRIBUTE_FLAGS } from '../config/searchAttributes.js';
