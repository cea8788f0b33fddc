/**
 * Events of a job can arrive before the reply that names the job: in Electron, events travel on
 * their own MessagePort and replies on ipc invoke, with no order between the two. While a start
 * request is waiting for its reply, events of unknown jobs are kept here and replayed once the
 * job's id is known; at any other time they belong to no one of ours and are dropped.
 */
import type { ApiEvent } from '../../../main/core/api.ts';

type JobEvent = Exclude<ApiEvent, { type: 'menu' }>;

export class EarlyEvents {
  #events: JobEvent[] | null = null;

  /** Call before sending the request that starts a job. */
  begin(): void {
    this.#events = [];
  }

  keep(event: JobEvent): void {
    this.#events?.push(event);
  }

  /**
   * The event when it is one of `jobId`'s; menu events and other jobs' events give null (the
   * latter are kept, should their job be the one starting).
   */
  ofJob(event: ApiEvent, jobId: string | undefined): JobEvent | null {
    if (event.type === 'menu') return null;
    if (jobId !== undefined && event.jobId === jobId) return event;
    this.keep(event);
    return null;
  }

  /** Stops keeping; returns the kept events of `jobId` (none when the start failed), in arrival order. */
  end(jobId?: string): JobEvent[] {
    const kept = this.#events ?? [];
    this.#events = null;
    return jobId ? kept.filter((e) => e.jobId === jobId) : [];
  }
}
