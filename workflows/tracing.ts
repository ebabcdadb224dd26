/**
 * The workflow half of tracing, bundled beside the workflows when a worker traces (the plugin
 * lists this module in `interceptors.workflowModules`): each workflow run, activity start and
 * child workflow start is a span, continuing the trace its starter sent in the headers. The
 * spans leave the sandbox through the worker's `exporter` sink.
 */
export { interceptors } from '@temporalio/interceptors-opentelemetry/lib/workflow-interceptors.js';
