// Test support for chapters after chapter 1: put a CPU into VMX operation with the kit's own short
// sequence, so a chapter's tests grade that chapter's exercises and not the learner's earlier code.
// (The learner's exercises still build on their own earlier code.) Also the failure-message helper
// every chapter test uses. The code lives in src/kernel/testing/reference-vm.ts, shared with src/ tests.
export { explain, hostInVmxOperation, kitCurrentVmcs, kitVmxOn } from '../../src/kernel/testing/reference-vm.ts';
