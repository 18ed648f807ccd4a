// The playground's hypervisor examples (TypeScript modules, kept as text so the site's type check
// does not try to resolve their 'vmxlab' import) and the CPU models a run can pick. Page-side only:
// it uses vite's ?raw and import.meta.glob.
import firstLaunch from './examples/first-launch.txt?raw';
import eptIdentity from './examples/ept-identity.txt?raw';

export const HYPERVISOR_EXAMPLES: readonly { name: string; source: string }[] = [
  { name: 'First launch: CPUID and HLT exits (chapter 4)', source: firstLaunch },
  { name: 'EPT identity map (chapter 6)', source: eptIdentity },
];

const models = import.meta.glob<string>('../../../../data/cpu-models/*.json', { eager: true, import: 'name' });

/** Model names as the data files give them (CPU_MODELS is built from the same files). */
export const CPU_MODEL_NAMES: readonly string[] = Object.values(models).sort();
