/**
 * Who may report on a host. The broker vouches for an observation's AMQP user_id (it refuses
 * one that is not the connection's user), and an agent's broker user is its host's name; so
 * an observation whose body names another host than its publisher's is a host lying about
 * a neighbour, and is dead-lettered. The fleet simulator and the demo publish for many hosts
 * under users listed in WRITER_FLEET_PUBLISHERS.
 */
import type { StateWriterConfig } from '../../shared/config.ts';

/** Why an observation of `host` published by `userId` is refused, or undefined if it is accepted. */
export function refusedPublisher(policy: StateWriterConfig['publishers'], userId: unknown, host: string): string | undefined {
  if (typeof userId !== 'string' || userId === '') {
    return policy.required ? 'observation without a publisher identity (AMQP user_id)' : undefined;
  }
  if (!policy.required || policy.fleet.includes(userId) || userId === host) return undefined;
  return `publisher ${userId} may only report on its own host, not on ${host}`;
}
