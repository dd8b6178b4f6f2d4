/**
 * libvirt test-driver node XML: a fake host whose domains start in any virDomainState,
 * set with <test:runstate>. Opening `test:///path/to/file.xml` gives a private hypervisor
 * with exactly these domains.
 */
import type { PowerState } from '../../shared/power-state.ts';

export interface SimulatedDomain {
  uuid: string;
  state: PowerState;
}

export function renderNodeXml(domains: readonly SimulatedDomain[]): string {
  const body = domains
    .map(
      (domain) => `  <domain type="test">
    <name>instance-${domain.uuid}</name>
    <uuid>${domain.uuid}</uuid>
    <memory>65536</memory>
    <vcpu>1</vcpu>
    <os><type>hvm</type></os>
    <test:runstate>${domain.state}</test:runstate>
  </domain>`,
    )
    .join('\n');
  return `<?xml version="1.0"?>
<node xmlns:test="http://libvirt.org/schemas/domain/test/1.0">
  <cpu><mhz>2000</mhz><model>i686</model><active>2</active><nodes>1</nodes><sockets>1</sockets><cores>2</cores><threads>1</threads></cpu>
  <memory>8388608</memory>
${body}
</node>
`;
}
