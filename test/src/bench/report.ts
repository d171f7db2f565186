/** Medians, ratios and the bench's table and JSON summary. */
import type { Cost } from './proc.js';

export type Unit = 'MiB/s' | 'files/s';

export interface Sample {
  ms: number;
  sender?: Cost;
  receiver?: Cost;
  /** Anything else a method measures (bytes re-sent after a cut …). */
  extra?: Record<string, number>;
}

export interface MethodSpec {
  key: string;
  label: string;
  unit: Unit;
  /** Bytes (MiB/s) or files (files/s) one run moves. */
  amount: number;
  /** Bytes one run moves, for CPU-seconds per GiB. */
  bytes: number;
  /** Key of the method this one is compared with (its ratio is amount/s over the baseline's). */
  baseline?: string;
}

export interface MethodResult {
  key: string;
  label: string;
  unit: Unit;
  runs: number;
  medianMs: number;
  /** Every run's time, in round order (the spread shows how noisy the machine was). */
  runsMs: number[];
  rate: number;
  ratio: number | null;
  /** CPU-seconds per GiB; for a files/s method, CPU-seconds per 1000 files. */
  senderCpuSecPerGiB: number | null;
  receiverCpuSecPerGiB: number | null;
  /** The same for the main thread alone (long-lived agents only). */
  senderMainCpuSecPerGiB: number | null;
  receiverMainCpuSecPerGiB: number | null;
  senderPeakRssMB: number | null;
  receiverPeakRssMB: number | null;
  extra: Record<string, number>;
}

export function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const GiB = 1024 ** 3;

/** CPU-seconds per GiB, or per 1000 files for a files/s method (per GiB of 4 KiB files means little). */
function cpuPer(samples: Sample[], side: 'sender' | 'receiver', spec: MethodSpec, which: 'cpuSec' | 'mainCpuSec' = 'cpuSec'): number | null {
  const xs = samples.map((s) => s[side]?.[which]).filter((x): x is number => x !== undefined && Number.isFinite(x));
  if (!xs.length) return null;
  return spec.unit === 'files/s' ? median(xs) / (spec.amount / 1000) : median(xs) / (spec.bytes / GiB);
}

function peak(samples: Sample[], side: 'sender' | 'receiver'): number | null {
  const xs = samples.map((s) => s[side]?.peakRssMB).filter((x): x is number => x !== undefined && Number.isFinite(x));
  return xs.length ? Math.max(...xs) : null;
}

export function summarize(specs: MethodSpec[], samples: Map<string, Sample[]>): MethodResult[] {
  const rates = new Map<string, number>();
  for (const spec of specs) {
    const ss = samples.get(spec.key) ?? [];
    const ms = median(ss.map((s) => s.ms));
    const rate = spec.unit === 'MiB/s' ? spec.amount / 1024 / 1024 / (ms / 1000) : spec.amount / (ms / 1000);
    rates.set(spec.key, rate);
  }
  return specs.filter((s) => (samples.get(s.key) ?? []).length > 0).map((spec) => {
    const ss = samples.get(spec.key)!;
    const base = spec.baseline ? rates.get(spec.baseline) : undefined;
    const extraKeys = new Set(ss.flatMap((s) => Object.keys(s.extra ?? {})));
    const extra = Object.fromEntries([...extraKeys].map((k) => [k, median(ss.map((s) => s.extra?.[k] ?? NaN))]));
    return {
      key: spec.key,
      label: spec.label,
      unit: spec.unit,
      runs: ss.length,
      medianMs: median(ss.map((s) => s.ms)),
      runsMs: ss.map((s) => Math.round(s.ms)),
      rate: rates.get(spec.key)!,
      ratio: base !== undefined && Number.isFinite(base) ? rates.get(spec.key)! / base : null,
      senderCpuSecPerGiB: cpuPer(ss, 'sender', spec),
      receiverCpuSecPerGiB: cpuPer(ss, 'receiver', spec),
      senderMainCpuSecPerGiB: cpuPer(ss, 'sender', spec, 'mainCpuSec'),
      receiverMainCpuSecPerGiB: cpuPer(ss, 'receiver', spec, 'mainCpuSec'),
      senderPeakRssMB: peak(ss, 'sender'),
      receiverPeakRssMB: peak(ss, 'receiver'),
      extra,
    };
  });
}

const f = (x: number | null | undefined, digits = 2): string => (x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits));

/** A markdown table (it reads as plain text too). */
export function table(results: MethodResult[], specs: MethodSpec[]): string {
  const lines = [
    '| method | median (runs) | rate | vs baseline | CPU-s/GiB (per 1000 files) sender | receiver | main thread sender | main thread receiver | peak RSS sender MB | peak RSS receiver MB |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of results) {
    const spec = specs.find((s) => s.key === r.key)!;
    const baseLabel = spec.baseline ? specs.find((s) => s.key === spec.baseline)?.label ?? spec.baseline : '';
    lines.push(`| ${r.label} | ${f(r.medianMs / 1000)} s (${r.runsMs.map((ms) => (ms / 1000).toFixed(1)).join(' ')}) | ${f(r.rate, 0)} ${r.unit} | ${r.ratio === null ? '' : `${f(r.ratio)}× ${baseLabel.split(' (')[0]}`} | ${f(r.senderCpuSecPerGiB)} | ${f(r.receiverCpuSecPerGiB)} | ${f(r.senderMainCpuSecPerGiB)} | ${f(r.receiverMainCpuSecPerGiB)} | ${f(r.senderPeakRssMB, 0)} | ${f(r.receiverPeakRssMB, 0)} |`);
  }
  return lines.join('\n');
}
