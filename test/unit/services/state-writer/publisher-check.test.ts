import assert from 'node:assert/strict';
import { test } from 'node:test';
import { refusedPublisher } from '../../../../services/state-writer/publisher-check.ts';

const strict = { required: true, fleet: ['virtsync-simulator'] };
const lax = { required: false, fleet: [] };

const cases: { name: string; policy: typeof strict; userId: unknown; host: string; refused: RegExp | undefined }[] = [
  { name: 'an agent about its own host', policy: strict, userId: 'h1', host: 'h1', refused: undefined },
  { name: 'an agent about another host', policy: strict, userId: 'h1', host: 'h2', refused: /publisher h1 may only report on its own host, not on h2/ },
  { name: 'no user_id when one is required', policy: strict, userId: undefined, host: 'h1', refused: /without a publisher identity/ },
  { name: 'an empty user_id when one is required', policy: strict, userId: '', host: 'h1', refused: /without a publisher identity/ },
  { name: 'the fleet simulator about any host', policy: strict, userId: 'virtsync-simulator', host: 'h9', refused: undefined },
  { name: 'a similar name is not the host', policy: strict, userId: 'h1', host: 'h10', refused: /not on h10/ },
  { name: 'development: no user_id', policy: lax, userId: undefined, host: 'h1', refused: undefined },
  { name: 'development: guest about any host', policy: lax, userId: 'guest', host: 'h1', refused: undefined },
];

for (const { name, policy, userId, host, refused } of cases) {
  test(`publisher check: ${name}`, () => {
    const reason = refusedPublisher(policy, userId, host);
    if (refused === undefined) assert.equal(reason, undefined);
    else assert.match(reason ?? '', refused);
  });
}
