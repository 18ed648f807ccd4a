// The "Kernel and CPU API" reference page: every public method of the Kernel a module gets and of the
// HostCpu that `k.cpu()` returns, with its signature and doc comment, read from the source with the
// TypeScript parser — so the page lists what the code has, not what someone remembered to write down.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import ts from 'typescript';
import { escapeCell, type Page } from './chapter-pages.ts';
import { REPO_ROOT } from './load.ts';

export interface ApiMember {
  readonly name: string;
  /** "kmalloc(size: number, flags: GfpFlags = 'GFP_KERNEL'): bigint" */
  readonly signature: string;
  /** The member's doc comment, one line; '' if none. */
  readonly doc: string;
  /** The section comment the member sits under ("memory", "Control registers"), or ''. */
  readonly section: string;
  /** Plain `//` comments right above the member: notes on the section from there on. */
  readonly note: string;
}

/** The classes the page documents, in order, with the name module code knows them by. */
export const API_CLASSES = [
  { file: 'src/kernel/kernel.ts', className: 'Kernel', as: 'k' },
  { file: 'src/kernel/host-cpu.ts', className: 'HostCpu', as: 'cpu' },
] as const;

/** Public methods and getters of `className` in `text`, in source order. */
export function apiMembers(text: string, className: string, fileName = `${className}.ts`): ApiMember[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const cls = source.statements.find((s): s is ts.ClassDeclaration => ts.isClassDeclaration(s) && s.name?.text === className);
  if (cls === undefined) throw new Error(`site: class ${className} not found in ${fileName}`);
  const out: ApiMember[] = [];
  let section = '';
  for (const m of cls.members) {
    section = sectionAbove(text, m) ?? section;
    if (!(ts.isMethodDeclaration(m) || ts.isGetAccessorDeclaration(m)) || m.name === undefined || !ts.isIdentifier(m.name)) continue;
    const mods = ts.getModifiers(m) ?? [];
    if (mods.some((x) => x.kind === ts.SyntaxKind.PrivateKeyword || x.kind === ts.SyntaxKind.ProtectedKeyword)) continue;
    const params = m.parameters.map((p) => p.getText(source).replace(/\s+/g, ' ')).join(', ');
    const type = m.type === undefined ? '' : `: ${m.type.getText(source).replace(/\s+/g, ' ')}`;
    const signature = ts.isGetAccessorDeclaration(m) ? `${m.name.text}${type}` : `${m.name.text}(${params})${type}`;
    out.push({ name: m.name.text, signature, doc: commentsAbove(text, m, 'doc'), note: commentsAbove(text, m, 'note'), section });
  }
  return out;
}

/** The comments right above a member: its JSDoc ('doc'), or its plain `//` lines that are not a section rule ('note'). */
function commentsAbove(text: string, node: ts.Node, kind: 'doc' | 'note'): string {
  const parts: string[] = [];
  for (const r of ts.getLeadingCommentRanges(text, node.getFullStart()) ?? []) {
    const c = text.slice(r.pos, r.end);
    if (kind === 'doc' && c.startsWith('/**')) parts.push(c.replace(/^\/\*\*|\*\/$/g, '').replace(/^\s*\* ?/gm, ''));
    if (kind === 'note' && c.startsWith('//') && sectionName(c) === null) parts.push(c.replace(/^\/\/\s?/, ''));
  }
  return parts.join(' ').replace(/\s+/g, ' ').trim();
}

function sectionAbove(text: string, node: ts.Node): string | null {
  let found: string | null = null;
  for (const r of ts.getLeadingCommentRanges(text, node.getFullStart()) ?? []) found = sectionName(text.slice(r.pos, r.end)) ?? found;
  return found;
}

/** "// ==== memory" and "// ---- Control registers ----" name a section. */
function sectionName(comment: string): string | null {
  const m = /^\/\/\s*(?:={3,}|-{3,})\s*([^=-][^=]*?)\s*(?:-{3,})?\s*$/.exec(comment);
  return m === null ? null : m[1]!.replace(/\s*\(.*\)$/, '');
}

/**
 * What the Linux-named calls without a doc comment do, in one line (Linux's meaning; the kit keeps it).
 * See the kernel's Documentation/core-api/memory-allocation.rst and the SDM for the instructions.
 */
const NOTES: Readonly<Record<string, string>> = {
  'Kernel.printk': 'Append a line to the kernel log.',
  'Kernel.dmesg': 'The kernel log so far, with timestamps (oops reports and BUG lines included).',
  'Kernel.num_online_cpus': 'How many CPUs there are.',
  'Kernel.preempt_disable': 'No migration to another CPU until preempt_enable (nestable).',
  'Kernel.preempt_enable': 'Undo one preempt_disable.',
  'Kernel.put_cpu': 'Undo get_cpu (preempt_enable).',
  'Kernel.local_irq_disable': 'Mask interrupts on this CPU (CLI); also keeps the task here.',
  'Kernel.local_irq_enable': 'Undo local_irq_disable (STI).',
  'Kernel.kmalloc': 'Physically contiguous memory, not zeroed; 0n on failure. Power-of-two sizes are aligned to their size.',
  'Kernel.kzalloc': 'kmalloc, zeroed.',
  'Kernel.kfree': 'Free kmalloc/kzalloc memory (a wrong or double free is a BUG in dmesg).',
  'Kernel.ksize': 'The usable size of a kmalloc block.',
  'Kernel.__free_pages': 'Free what alloc_pages returned, with the same order.',
  'Kernel.page_address': 'The direct-map (kernel virtual) address of a Page.',
  'Kernel.page_to_phys': 'The physical address of a Page.',
  'Kernel.__get_free_page': 'One page, not zeroed; its direct-map address, 0n on failure.',
  'Kernel.get_zeroed_page': 'One zeroed page; its direct-map address, 0n on failure.',
  'Kernel.free_pages': 'Free __get_free_pages memory, with the same order.',
  'Kernel.free_page': 'Free one page from __get_free_page or get_zeroed_page.',
  'Kernel.vzalloc': 'vmalloc, zeroed.',
  'Kernel.vfree': 'Free vmalloc/vzalloc memory.',
  'Kernel.__pa': 'Linux\'s short name for virt_to_phys.',
  'Kernel.phys_to_virt': 'The direct-map address of a physical address.',
  'Kernel.__va': 'Linux\'s short name for phys_to_virt.',
  'Kernel.insmod': 'Load a module: runs its init; an oops or a negative errno fails the load.',
  'Kernel.rmmod': 'Unload a module: runs its exit.',
  'Kernel.isLoaded': 'Whether a module of that name is loaded.',
  'HostCpu.rflags': 'RFLAGS after the last instruction: CF = 1 is VMfailInvalid, ZF = 1 is VMfailValid.',
  'HostCpu.cpuid': 'CPUID: the four registers, as numbers.',
  'HostCpu.rdmsr': 'RDMSR; #GP (an oops) for an MSR this CPU does not have.',
  'HostCpu.wrmsr': 'WRMSR; #GP for a missing or read-only MSR, or a locked IA32_FEATURE_CONTROL.',
  'HostCpu.readCr0': 'MOV from CR0.',
  'HostCpu.readCr2': 'MOV from CR2.',
  'HostCpu.readCr3': 'MOV from CR3.',
  'HostCpu.readCr4': 'MOV from CR4.',
  'HostCpu.writeCr0': 'MOV to CR0, with its #GP checks (and, in VMX operation, the fixed bits).',
  'HostCpu.writeCr2': 'MOV to CR2.',
  'HostCpu.writeCr3': 'MOV to CR3.',
  'HostCpu.writeCr4': 'MOV to CR4, with its #GP checks (and, in VMX operation, the fixed bits).',
  'HostCpu.readDr7': 'MOV from DR7.',
  'HostCpu.writeGpr': 'Write a general-purpose register (e.g. the guest\'s RAX after a CPUID exit).',
  'HostCpu.sgdt': 'SGDT: the GDTR base and limit.',
  'HostCpu.sidt': 'SIDT: the IDTR base and limit.',
  'HostCpu.lidt': 'LIDT.',
  'HostCpu.readGsBase': 'RDGSBASE.',
  'HostCpu.vmxon': 'VMXON m64 with the VMXON region\'s physical address; the outcome is in rflags().',
  'HostCpu.vmxoff': 'VMXOFF; the outcome is in rflags().',
  'HostCpu.vmclear': 'VMCLEAR m64: flush a VMCS to memory and clear its launch state.',
  'HostCpu.vmptrld': 'VMPTRLD m64: make a VMCS current.',
  'HostCpu.vmlaunch': 'VMLAUNCH: on success the CPU runs the guest once the host code returns.',
  'HostCpu.vmresume': 'VMRESUME: the same, for a launched VMCS.',
};

/** Prose from a comment, safe in a table cell and in vitepress (no HTML, no Vue interpolation). */
const text = (s: string): string => escapeCell(s).replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\{\{/g, '{ {');

export function kernelApiPage(read: (file: string) => string = (f) => readFileSync(resolve(REPO_ROOT, f), 'utf8')): Page {
  // vmx-api: signatures may wrap (custom.css), so the descriptions keep room next to the outline.
  let md = '---\ntitle: Kernel and CPU API\ndescription: Every call a hypervisor module can make, from the source.\npageClass: vmx-reference vmx-api\n---\n\n# Kernel and CPU API\n\n';
  md +=
    'What a hypervisor module can call: the `Kernel` it gets in `init(k)` and `exit(k)`, and the `HostCpu` that ' +
    '`k.cpu()` returns (the privileged instructions of the CPU the code runs on). Listed from the source on every ' +
    'build. Chapter 1 has the short version, with which allocator to use and the `bigint`/`number` rule: ' +
    '[The kernel and CPU API at a glance](/chapters/01-vmxon#the-kernel-and-cpu-api-at-a-glance).\n\n' +
    '`bigint` are addresses, MSR and control-register values, RFLAGS and 64-bit data; `number` are sizes, ' +
    'orders, MSR indices, CPUID registers and 8/16/32-bit data.\n';
  for (const c of API_CLASSES) {
    md += `\n## \`${c.className}\` (\`${c.as}\`)\n\nSource: \`${c.file}\`.\n`;
    let section: string | null = null;
    for (const m of apiMembers(read(c.file), c.className, c.file)) {
      if (m.section !== section) {
        section = m.section;
        md += `\n### ${section === '' ? 'General' : section[0]!.toUpperCase() + section.slice(1)}\n\n`;
        md += `${m.note !== '' ? `${text(m.note)}\n\n` : ''}| call | what it does |\n|---|---|\n`;
      } else if (m.note !== '') {
        md += `| | ${text(m.note)} |\n`;
      }
      const doc = m.doc !== '' ? m.doc : (NOTES[`${c.className}.${m.name}`] ?? '');
      md += `| \`${escapeCell(`${c.as}.${m.signature}`)}\` | ${text(doc)} |\n`;
    }
  }
  return { path: 'reference/kernel-api.md', content: md };
}
