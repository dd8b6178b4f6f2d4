/**
 * hostRoutingWord is injective over every name hostNameSchema accepts: proved by decoding
 * each word back to its host (a function with an inverse is injective), and by looking
 * for two names with one word among names built from the colliding characters.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { hostNameSchema, hostRoutingWord } from '../../../shared/host-name.ts';

/** The inverse of hostRoutingWord: a character of the word maps back to one host character. */
function hostOfRoutingWord(word: string): string {
  return [...word].map((char) => (char === '_' ? '.' : char === '~' ? '_' : char)).join('');
}

const isHostName = (name: string): boolean => hostNameSchema.safeParse(name).success;

/** Any name the rule accepts, over the whole alphabet. */
const anyHostName = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_-]{0,20}(\.[A-Za-z0-9_-]{1,20}){0,4}$/).filter(isHostName);

/** Names of a few characters where `.` and `_` meet often: where the old mapping collided. */
const crowdedHostName = fc
  .tuple(fc.constantFrom('a', '0'), fc.array(fc.constantFrom('a', '_', '.', '-'), { maxLength: 8 }))
  .map(([first, rest]) => first + rest.join(''))
  .filter(isHostName);

describe('hostRoutingWord', () => {
  test('each word decodes to its host, so no two hosts share one', () => {
    fc.assert(fc.property(anyHostName, (host) => hostOfRoutingWord(hostRoutingWord(host)) === host), { numRuns: 2_000 });
  });

  test('distinct crowded names get distinct words', () => {
    fc.assert(
      fc.property(crowdedHostName, crowdedHostName, (a, b) => a === b || hostRoutingWord(a) !== hostRoutingWord(b)),
      { numRuns: 5_000 },
    );
  });

  test('a word is one topic word and never a wildcard', () => {
    fc.assert(
      fc.property(anyHostName, (host) => {
        const word = hostRoutingWord(host);
        return !word.includes('.') && word !== '*' && word !== '#' && word.length > 0;
      }),
      { numRuns: 2_000 },
    );
  });

  test('the names that used to collide', () => {
    assert.equal(hostRoutingWord('a.b'), 'a_b');
    assert.equal(hostRoutingWord('a_b'), 'a~b');
    assert.equal(hostRoutingWord('cmp-1.dc1'), 'cmp-1_dc1');
    assert.equal(hostRoutingWord('a_.b_'), 'a~_b~');
  });
});
