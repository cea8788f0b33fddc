/**
 * Cosine annealing as torch.optim.lr_scheduler.CosineAnnealingLR computes it in closed form:
 * eta_min + (base - eta_min)·(1 + cos(π·t/T))/2. The official recipe steps it once per epoch;
 * stepping per optimiser step (t = step, T = total steps) is the smoother choice offered here.
 */
export function cosineLearningRate(t: number, total: number, base: number, etaMin = 1e-7): number {
  if (total <= 0) return base;
  const clamped = Math.min(Math.max(t, 0), total);
  return etaMin + ((base - etaMin) * (1 + Math.cos((Math.PI * clamped) / total))) / 2;
}
