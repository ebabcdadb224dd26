import { CancellationScope } from '@temporalio/workflow';

/**
 * Runs stages side by side and returns their results in order. The first failure cancels the
 * others, and nothing returns or throws until every one has stopped: `Promise.all` would end the
 * round at the first failure (or at the quickest stage's cancellation) while a trainer or a
 * sampler still runs and may yet publish. Throws that first failure.
 */
export async function together<T extends readonly unknown[]>(stages: { readonly [K in keyof T]: () => Promise<T[K]> }): Promise<T> {
  const scope = new CancellationScope();
  const failures: unknown[] = [];
  const settled = await scope.run(() =>
    Promise.allSettled(
      (stages as readonly (() => Promise<unknown>)[]).map(async (stage) => {
        try {
          return await stage();
        } catch (error) {
          if (failures.push(error) === 1) scope.cancel();
          throw error;
        }
      }),
    ),
  );
  if (failures.length > 0) throw failures[0];
  return settled.map((outcome) => (outcome as PromiseFulfilledResult<unknown>).value) as unknown as T;
}
