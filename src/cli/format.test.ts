import { describe, expect, test } from 'vitest';
import { progressBar } from './format.ts';

describe('progressBar', () => {
  test('nothing done: empty; everything done: full', () => {
    expect(progressBar(0, 44)).toBe(`[${'-'.repeat(20)}] 0/44`);
    expect(progressBar(44, 44)).toBe(`[${'#'.repeat(20)}] 44/44`);
    expect(progressBar(0, 0)).toBe(`[${'-'.repeat(20)}] 0/0`);
  });
  test('one exercise of many shows a mark; all but one is not full', () => {
    expect(progressBar(1, 44)).toBe(`[#${'-'.repeat(19)}] 1/44`);
    expect(progressBar(43, 44)).toBe(`[${'#'.repeat(19)}-] 43/44`);
    expect(progressBar(22, 44)).toBe(`[${'#'.repeat(10)}${'-'.repeat(10)}] 22/44`);
  });
});
