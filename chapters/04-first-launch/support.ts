// Test support for chapter 4 (imported by the tests only, never by learner code): an independent way to enter
// VMX operation and to fill a complete, valid VMCS without any of the learner's code, a run loop that dispatches
// VM exits to host entry points, and the failure-message helper every test uses (given an exit trace, it shows the
// last VM exits too). The code lives in src/kernel/testing/reference-vm.ts and src/debug, shared with src/ tests
// and later chapters.
export { bootHost, type Host, type HostOptions } from '../../src/kernel/boot-host.ts';
export { traceExits, type ExitTrace } from '../../src/debug/exit-trace.ts';
export {
  REFERENCE_SEGMENTS, TINY_GUEST, buildReferenceGuest, enterVmx, explain, read, referenceControls, runGuests, write,
  writeReferenceControls, writeReferenceGuestState, writeReferenceHostState, writeReferenceVmcs,
  type ReferenceGuest, type RunResult, type VmxSetup,
} from '../../src/kernel/testing/reference-vm.ts';
