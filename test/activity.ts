import type { MockActivityEnvironment } from '@temporalio/testing';

/** `env.run` with the activity's own return type (the SDK's signature cannot infer it). */
export function runActivity<A, R>(env: MockActivityEnvironment, activity: (arg: A) => Promise<R>, arg: A): Promise<R> {
  return env.run<[A], R, (arg: A) => Promise<R>>(activity, arg);
}
