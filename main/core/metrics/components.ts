/**
 * Connected components of a 3D mask, as scipy.ndimage.label labels them: `connectivity` 26
 * (faces, edges and corners touch; scipy's generate_binary_structure(3, 3)), 18 or 6.
 * Components are numbered 1… in the order their first voxel appears in memory order (x fastest),
 * which is scipy's order too.
 */

export interface Components {
  /** component number per voxel, 0 outside the mask */
  labels: Int32Array;
  /** voxel count of component i + 1 at index i */
  sizes: number[];
}

export type Connectivity = 6 | 18 | 26;

function neighbourOffsets(connectivity: Connectivity): [number, number, number][] {
  const offsets: [number, number, number][] = [];
  for (let dz = -1; dz <= 1; dz++)
    for (let dy = -1; dy <= 1; dy++)
      for (let dx = -1; dx <= 1; dx++) {
        const order = Math.abs(dx) + Math.abs(dy) + Math.abs(dz);
        if (order === 0) continue;
        if (connectivity === 6 && order > 1) continue;
        if (connectivity === 18 && order > 2) continue;
        offsets.push([dx, dy, dz]);
      }
  return offsets;
}

/**
 * Floods the component of `start` (which must be in the mask and unlabelled) with `id`, appending
 * its voxels to `queue` from 0; returns the component's size and the (possibly grown) queue.
 * Shared by connectedComponents and componentAt, so a click in the editor removes exactly the
 * component the measurements count.
 */
function flood(
  mask: ArrayLike<number>,
  dims: readonly [number, number, number],
  offsets: readonly [number, number, number][],
  inMask: (value: number) => boolean,
  labels: Int32Array,
  start: number,
  id: number,
  queue: Int32Array<ArrayBuffer>,
): { size: number; queue: Int32Array<ArrayBuffer> } {
  const [nx, ny, nz] = dims;
  const plane = nx * ny;
  labels[start] = id;
  let head = 0;
  let tail = 0;
  queue[tail++] = start;
  while (head < tail) {
    const i = queue[head++]!;
    const z = Math.floor(i / plane);
    const y = Math.floor((i - z * plane) / nx);
    const x = i - z * plane - y * nx;
    for (const [dx, dy, dz] of offsets) {
      const xx = x + dx;
      const yy = y + dy;
      const zz = z + dz;
      if (xx < 0 || yy < 0 || zz < 0 || xx >= nx || yy >= ny || zz >= nz) continue;
      const j = zz * plane + yy * nx + xx;
      if (labels[j] !== 0 || !inMask(mask[j]!)) continue;
      labels[j] = id;
      if (tail === queue.length) {
        const bigger = new Int32Array(queue.length * 2);
        bigger.set(queue);
        queue = bigger;
      }
      queue[tail++] = j;
    }
  }
  return { size: tail, queue };
}

function checkGrid(mask: ArrayLike<number>, dims: readonly number[]): [number, number, number] {
  const [nx, ny, nz] = dims as [number, number, number];
  const n = nx * ny * nz;
  if (mask.length !== n) throw new Error(`mask has ${mask.length} voxels, the grid ${nx}×${ny}×${nz} needs ${n}`);
  return [nx, ny, nz];
}

/**
 * Labels the voxels where `inMask(value)` holds (default: non-zero). Flood fill with an explicit
 * queue: only mask voxels are visited twice, so a small tumour in a large grid costs one scan.
 */
export function connectedComponents(
  mask: ArrayLike<number>,
  dims: readonly [number, number, number] | readonly number[],
  connectivity: Connectivity = 26,
  inMask: (value: number) => boolean = (v) => v !== 0,
): Components {
  const grid = checkGrid(mask, dims);
  const n = mask.length;
  const labels = new Int32Array(n);
  const sizes: number[] = [];
  const offsets = neighbourOffsets(connectivity);
  let queue = new Int32Array(1024);
  for (let start = 0; start < n; start++) {
    if (labels[start] !== 0 || !inMask(mask[start]!)) continue;
    const filled = flood(mask, grid, offsets, inMask, labels, start, sizes.length + 1, queue);
    queue = filled.queue;
    sizes.push(filled.size);
  }
  return { labels, sizes };
}

/**
 * The voxel indices of the one component holding voxel `seed` (empty when `seed` is not in the
 * mask), with the same connectivity rule as connectedComponents.
 */
export function componentAt(
  mask: ArrayLike<number>,
  dims: readonly [number, number, number] | readonly number[],
  seed: number,
  connectivity: Connectivity = 26,
  inMask: (value: number) => boolean = (v) => v !== 0,
): Int32Array {
  const grid = checkGrid(mask, dims);
  if (!(seed >= 0 && seed < mask.length) || !inMask(mask[seed]!)) return new Int32Array(0);
  const labels = new Int32Array(mask.length);
  const { size, queue } = flood(mask, grid, neighbourOffsets(connectivity), inMask, labels, seed, 1, new Int32Array(1024));
  return queue.slice(0, size);
}
