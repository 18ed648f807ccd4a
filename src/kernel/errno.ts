// Linux error numbers a module's init returns (negated), from include/uapi/asm-generic/errno-base.h.
export const EPERM = 1;
export const ENOENT = 2;
export const EIO = 5;
export const ENOMEM = 12;
export const EFAULT = 14;
export const EBUSY = 16;
export const ENODEV = 19;
export const EINVAL = 22;
export const EOPNOTSUPP = 95;

const NAMES: Record<number, string> = {
  [EPERM]: 'EPERM (Operation not permitted)',
  [ENOENT]: 'ENOENT (No such file or directory)',
  [EIO]: 'EIO (Input/output error)',
  [ENOMEM]: 'ENOMEM (Cannot allocate memory)',
  [EFAULT]: 'EFAULT (Bad address)',
  [EBUSY]: 'EBUSY (Device or resource busy)',
  [ENODEV]: 'ENODEV (No such device)',
  [EINVAL]: 'EINVAL (Invalid argument)',
  [EOPNOTSUPP]: 'EOPNOTSUPP (Operation not supported)',
};

export function errnoName(errno: number): string {
  return NAMES[Math.abs(errno)] ?? `errno ${Math.abs(errno)}`;
}
