/**
 * The scheduler classes the runtime implements, by diffusers' `_class_name`. Kept apart from
 * the config parser (which reads files) so the workflow sandbox can validate a round's input.
 */
export const SCHEDULER_CLASS_NAMES = ['DDIMScheduler', 'EulerDiscreteScheduler', 'EulerAncestralDiscreteScheduler', 'DPMSolverMultistepScheduler'] as const;
export type SchedulerClassName = (typeof SCHEDULER_CLASS_NAMES)[number];

export function isSchedulerClassName(name: unknown): name is SchedulerClassName {
  return SCHEDULER_CLASS_NAMES.some((n) => n === name);
}
