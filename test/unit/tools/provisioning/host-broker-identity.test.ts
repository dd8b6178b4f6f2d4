import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eventObservationRoutingKey, Exchange, observationRoutingKey, reportRoutingKey, tickQueue, unknownDomainRoutingKey } from '../../../../shared/bus/topology.ts';
import { hostPermissions } from '../../../../tools/provisioning/host-broker-identity.ts';

const matches = (pattern: string, name: string): boolean => new RegExp(pattern).test(name);

for (const host of ['h1', 'compute-7.example.org']) {
  test(`${host}'s agent: its own tick queue and routing keys only, nothing to configure`, () => {
    const { permissions, topicPermissions } = hostPermissions(host);
    assert.ok(matches(permissions.read, tickQueue(host)));
    assert.ok(!matches(permissions.read, tickQueue(`${host}0`)));
    assert.ok(!matches(permissions.read, 'virtsync.state-writer'));
    assert.ok(!matches(permissions.configure, tickQueue(host)));
    assert.ok(matches(permissions.write, Exchange.observations) && matches(permissions.write, Exchange.reports));
    assert.ok(!matches(permissions.write, Exchange.deadLetter) && !matches(permissions.write, Exchange.changes) && !matches(permissions.write, Exchange.ticks));
    const observations = topicPermissions.find((topic) => topic.exchange === Exchange.observations);
    const reports = topicPermissions.find((topic) => topic.exchange === Exchange.reports);
    assert.ok(observations !== undefined && reports !== undefined);
    assert.ok(matches(observations.write, observationRoutingKey(host)));
    assert.ok(!matches(observations.write, observationRoutingKey('h2')));
    assert.ok(!matches(observations.write, `${observationRoutingKey(host)}0`));
    assert.ok(matches(observations.write, eventObservationRoutingKey(host)));
    assert.ok(!matches(observations.write, eventObservationRoutingKey('h2')));
    assert.ok(!matches(observations.write, `${eventObservationRoutingKey(host)}0`));
    assert.ok(matches(reports.write, reportRoutingKey(host)) && matches(reports.write, unknownDomainRoutingKey(host)));
    assert.ok(!matches(reports.write, reportRoutingKey('h2')));
  });
}
