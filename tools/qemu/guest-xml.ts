/**
 * A guest the QEMU driver can run on any machine: software emulation (TCG, type='qemu', so
 * no /dev/kvm), 32 MiB, one vCPU, no disk and no OS (its firmware finds nothing to boot and
 * halts: ~0.5 % of a core idle). It keeps a crashed state for a look (on_crash=preserve) and
 * has an ISA panic device, so `o /b 0x505 1` on its monitor panics it.
 */
export interface GuestOptions {
  name: string;
  uuid: string;
  /**
   * A boot disk (blkdebug over a null device, rerror=stop) whose reads fail from the third
   * on: SeaBIOS reads it twice at boot and boots nothing, so the guest comes up running;
   * after `virsh reset` the firmware's next read fails and QEMU pauses the guest with an I/O
   * error, as a dead SAN would, with no other lifecycle event around it.
   */
  failingDisk?: boolean;
}

// Passed through to QEMU: libvirt has no blkdebug disk source. blkdebug counts reads in its states 1, 2, 3.
const FAILING_DISK = `
  <qemu:commandline>
    <qemu:arg value='-blockdev'/>
    <qemu:arg value='{"driver":"raw","node-name":"vsfail","file":{"driver":"blkdebug","set-state":[{"event":"read_aio","state":1,"new_state":2},{"event":"read_aio","state":2,"new_state":3}],"inject-error":[{"event":"read_aio","state":3,"errno":5}],"image":{"driver":"null-co","size":1048576,"read-zeroes":true}}}'/>
    <qemu:arg value='-device'/>
    <qemu:arg value='ide-hd,drive=vsfail,bus=ide.0,unit=0,rerror=stop,werror=stop,bootindex=1'/>
  </qemu:commandline>`;

export function guestXml(options: GuestOptions): string {
  if (!/^[\w.-]+$/.test(options.name)) throw new Error(`guest name ${JSON.stringify(options.name)}: letters, digits, . _ - only`);
  return `<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>${options.name}</name>
  <uuid>${options.uuid}</uuid>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <on_crash>preserve</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='pty'/>
    <console type='pty'/>
    <memballoon model='none'/>
    <panic model='isa'><address type='isa' iobase='0x505'/></panic>
  </devices>${options.failingDisk === true ? FAILING_DISK : ''}
</domain>
`;
}
