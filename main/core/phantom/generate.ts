import { Volume, type Geometry, type Vec3 } from '../io/volume.ts';
import type { BratsSequence } from '../io/study.ts';
import { Field3, smoothNoise, stackFields } from './noise.ts';
import { GAUSS_MASK, GAUSS_SHIFT, GAUSS_TABLE, Rng, mixSeed } from './random.ts';

/**
 * Procedural BraTS-like studies with exact ground truth.
 *
 * The anatomy is a set of implicit shapes in a canonical frame laid out like a BraTS 2020 case
 * (240×240×155 voxels of 1 mm, x → patient left, y → posterior, z → superior, skull-stripped
 * with a zero background, cerebellum and brainstem cut by the bottom slice). Each output voxel is
 * mapped into that frame through a random affine and a smooth random displacement, and its
 * tissue fractions (CSF, cortical and deep grey matter, white matter, edema, enhancing tumour,
 * necrosis) are evaluated there with soft edges, which gives partial-volume boundaries without a
 * smoothing pass. Four contrast tables turn fractions into intensities; a bias field and Rician
 * noise follow. The tables were measured on ../shared/data/phantoms (Colin27-based cases) in
 * units of each volume's 0.5–99.5 percentile range, the same normalisation the model uses.
 */

export const PHANTOM_SEQUENCES = ['t1', 't1ce', 't2', 'flair'] as const satisfies readonly BratsSequence[];
export type PhantomSequence = (typeof PHANTOM_SEQUENCES)[number];

/** BraTS 2020 grid: 240×240×155 voxels of 1 mm. */
export const BRATS_DIMS: Vec3 = [240, 240, 155];

export interface PhantomOptions {
  /** output grid; the field of view stays 240×240×155 mm, so other sizes change the spacing */
  size?: Vec3;
  /** force the presence of the enhancing tumour (label 4) or of the necrotic core (label 1) */
  enhancing?: boolean;
  necrosis?: boolean;
  /**
   * `classic` (default): one lesion in a cerebral hemisphere, 5–17 mm core, the contrast and noise
   * ranges the generator was calibrated with (existing seeds keep their voxels).
   * `broad`: whole-tumour volume log-uniform 1–100 ml, anywhere in the brain (either hemisphere,
   * every lobe, deep, occasionally the cerebellum), 1–3 separate foci, more cases without
   * enhancement or necrosis, and wider contrast, noise and bias-field variation: training and
   * held-out data for a model that must not hallucinate on studies unlike the shared phantoms.
   * `focal`: the broad contrast, noise and bias ranges, with small tumours (0.5–10 ml in all, 1–3
   * foci) high in the cerebrum, half of the foci on or beside the midline: where the cortex, its
   * sulci and the interhemispheric fissure fill most of the slice and a small bright focus is
   * easily taken for one of them (the miss the broad set's held-out case 021 showed).
   */
  variety?: PhantomVariety;
}

export const PHANTOM_VARIETIES = ['classic', 'broad', 'focal'] as const;
export type PhantomVariety = (typeof PHANTOM_VARIETIES)[number];

export interface PhantomInfo {
  seed: number;
  index: number;
  /** true when label 4 / label 1 are present in the ground truth */
  enhancing: boolean;
  necrosis: boolean;
  /** centroid of the whole tumour (labels 1, 2, 4) in voxel indices; the edema and core radii in mm */
  tumourCentroid: Vec3;
  edemaRadius: number;
  coreRadius: number;
  labelCounts: Record<0 | 1 | 2 | 4, number>;
  variety: PhantomVariety;
  /** separate lesions planned (satellites of one lesion not counted) */
  foci: number;
  /** whole-tumour volume (labels 1, 2, 4) in ml */
  wholeTumourMl: number;
}

export interface PhantomCase {
  name: string;
  sequences: Record<PhantomSequence, Volume>;
  seg: Volume;
  info: PhantomInfo;
}

export function phantomCaseName(index: number): string {
  return `Phantom_${String(index).padStart(3, '0')}`;
}

/**
 * The BraTS affine in LPS: RAS diag(-1, -1, 1) with origin (0, 239, 0) for 1 mm voxels, i.e. the
 * first voxel at LPS (0, -239, 0) and identity directions.
 */
export function phantomGeometry(size: Vec3 = BRATS_DIMS): Geometry {
  const spacing = [0, 1, 2].map((a) => BRATS_DIMS[a]! / size[a]!) as Vec3;
  return {
    dims: [...size],
    spacing,
    origin: [0, -(size[1] - 1) * spacing[1], 0],
    direction: [1, 0, 0, 0, 1, 0, 0, 0, 1],
  };
}

// tissue classes, in the order of the contrast tables
const CSF = 0;
const GM = 1;
const WM = 2;
const DEEP = 3;
const EDEMA = 4;
const ET = 5;
const NEC = 6;
/** solid non-enhancing tumour (broad and focal varieties only): FLAIR and T2 bright like tumour, not fluid like necrosis */
const NET = 7;
const TISSUES = 8;

/**
 * Mean intensity of each tissue in units of the volume's 0.5–99.5 percentile range, measured on
 * the four shared phantoms (k-means on non-tumour brain for CSF/GM/WM, label means for tumour).
 */
const CONTRAST: Record<PhantomSequence, number[]> = {
  //      CSF   GM    WM    deep  edema ET    necrosis
  t1: [0.05, 0.5, 0.79, 0.63, 0.35, 0.26, 0.09],
  t1ce: [0.05, 0.51, 0.74, 0.62, 0.35, 0.96, 0.09],
  t2: [0.98, 0.5, 0.15, 0.4, 1.0, 0.74, 0.95],
  flair: [0.45, 0.56, 0.16, 0.44, 1.02, 0.74, 0.55],
};
/**
 * Non-enhancing solid tumour core, BraTS label 1 without enhancement (low-grade-like): hyperintense
 * in FLAIR and T2, a little below the edema, hypointense in T1, no enhancement. Not measured (the
 * shared phantoms have no such core); the classic variety keeps using necrosis for it.
 */
const NET_CONTRAST: Record<PhantomSequence, number> = { t1: 0.3, t1ce: 0.34, t2: 0.86, flair: 0.86 };
/** raw value of the 0.5 percentile relative to the 99.5 percentile, as measured */
const FLOOR: Record<PhantomSequence, number> = { t1: 0.22, t1ce: 0.24, t2: 0.11, flair: 0.11 };

const smoothstep = (e0: number, e1: number, x: number): number => {
  const t = x <= e0 ? 0 : x >= e1 ? 1 : (x - e0) / (e1 - e0);
  return t * t * (3 - 2 * t);
};

interface Ellipsoid {
  c: Vec3;
  /** 1 / semi-axes; the lower z semi-axis may differ (flat-bottomed cerebrum) */
  ix: number;
  iy: number;
  izUp: number;
  izDown: number;
}

const ellipsoid = (c: Vec3, a: Vec3, aDown = a[2]): Ellipsoid => ({ c, ix: 1 / a[0], iy: 1 / a[1], izUp: 1 / a[2], izDown: 1 / aDown });

const radius = (e: Ellipsoid, x: number, y: number, z: number): number => {
  const dx = (x - e.c[0]) * e.ix;
  const dy = (y - e.c[1]) * e.iy;
  const dz = (z - e.c[2]) * (z >= e.c[2] ? e.izUp : e.izDown);
  return Math.sqrt(dx * dx + dy * dy + dz * dz);
};

// canonical anatomy (mm in the BraTS voxel frame)
const MID_X = 120;
const CEREBRUM = ellipsoid([MID_X, 118, 80], [68, 89, 65], 47);
const CEREBELLUM = ellipsoid([MID_X, 170, 34], [50, 33, 25]);
const BRAINSTEM = ellipsoid([MID_X, 133, 22], [13, 14, 46]);
const DEEP_NUCLEI = [ellipsoid([MID_X - 21, 115, 72], [11, 20, 13]), ellipsoid([MID_X + 21, 115, 72], [11, 20, 13])];
const COMPARTMENTS = [CEREBRUM, CEREBELLUM, BRAINSTEM];

/**
 * The interval of t where start + t·step lies within normalised radius `limit` of the ellipsoid
 * (with its larger z semi-axis on both sides, so the interval is never too short); null if none.
 */
function rowInterval(e: Ellipsoid, start: Float64Array, step: Float64Array, limit: number): [number, number] | null {
  const iz = Math.min(e.izUp, e.izDown);
  const u0 = (start[0]! - e.c[0]) * e.ix;
  const u1 = (start[1]! - e.c[1]) * e.iy;
  const u2 = (start[2]! - e.c[2]) * iz;
  const v0 = step[0]! * e.ix;
  const v1 = step[1]! * e.iy;
  const v2 = step[2]! * iz;
  const a = v0 * v0 + v1 * v1 + v2 * v2;
  const b = u0 * v0 + u1 * v1 + u2 * v2;
  const c = u0 * u0 + u1 * u1 + u2 * u2 - limit * limit;
  const disc = b * b - a * c;
  if (a <= 0 || disc < 0) return null;
  const root = Math.sqrt(disc);
  return [(-b - root) / a, (-b + root) / a];
}

/** depth scale (mm per unit of normalised radius) of each compartment */
const DEPTH_SCALE = { cerebrum: 58, cerebellum: 27, brainstem: 13 };
/** warp fields are clamped to ±WARP_LIMIT standard deviations, which bounds the displacement */
const WARP_LIMIT = 3;
const NOISE_LIMIT = 2.5;
const FRAME_LO: Vec3 = [-10, -10, -10];
const FRAME_HI: Vec3 = [250, 250, 165];
const NOISE_LO: Vec3 = [20, 0, -30];
const NOISE_HI: Vec3 = [220, 240, 175];

interface Lesion {
  centre: Vec3;
  /** rows of the rotation taking canonical offsets into the tumour's own axes */
  rot: number[];
  axes: Vec3;
  edemaRadius: number;
  coreRadius: number;
  necrosisRadius: number;
  enhancing: boolean;
  necrosis: boolean;
  /** the tissue of a non-enhancing core: NEC (classic) or NET (broad, focal) */
  coreTissue?: number;
  satellites: { centre: Vec3; radius: number }[];
  /** half the side of the cube around the centre that holds the whole tumour */
  reach: number;
  /** how far the edema boundary wanders (fraction of its radius per standard deviation) */
  edemaIrregularity: number;
  shapeField: Field3;
  fineField: Field3;
}

interface CanonicalFields {
  /** channels: 0 fold (sulci at its zero crossings), 1 tissue texture */
  fine: Field3;
  /** channels: 0 sulcal depth, 1 surface ripple and midline wander */
  coarse: Field3;
  /** cerebellar folia */
  folia: Field3;
  atFine: Float64Array;
  atCoarse: Float64Array;
}

function randomRotation(rng: Rng, maxAngles: Vec3): number[] {
  const [a, b, c] = maxAngles.map((m) => rng.uniform(-m, m)) as Vec3;
  const [ca, sa, cb, sb, cc, sc] = [Math.cos(a), Math.sin(a), Math.cos(b), Math.sin(b), Math.cos(c), Math.sin(c)];
  // Rz(c) · Ry(b) · Rx(a)
  return [
    cc * cb, cc * sb * sa - sc * ca, cc * sb * ca + sc * sa,
    sc * cb, sc * sb * sa + cc * ca, sc * sb * ca - cc * sa,
    -sb, cb * sa, cb * ca,
  ];
}

function clampField(field: Field3, limit: number): Field3 {
  const { data } = field;
  for (let i = 0; i < data.length; i++) data[i] = data[i]! > limit ? limit : data[i]! < -limit ? -limit : data[i]!;
  return field;
}

function planClassicLesion(rng: Rng, options: PhantomOptions): Lesion {
  // a centre well inside the cerebrum, away from the midline and the deep nuclei
  let centre: Vec3 = [MID_X, 118, 90];
  for (let attempt = 0; attempt < 100; attempt++) {
    const side = rng.chance(0.5) ? -1 : 1;
    const candidate: Vec3 = [MID_X + side * rng.uniform(12, 45), rng.uniform(55, 185), rng.uniform(55, 122)];
    if (radius(CEREBRUM, ...candidate) < 0.68) {
      centre = candidate;
      break;
    }
  }
  const enhancing = options.enhancing ?? rng.chance(0.8);
  const necrosis = !enhancing ? true : (options.necrosis ?? rng.chance(0.6));
  const coreRadius = enhancing ? rng.logUniform(5, 15) : rng.logUniform(7, 17);
  const edemaRadius = coreRadius + rng.uniform(8, 22);
  const necrosisRadius = necrosis ? coreRadius * (enhancing ? rng.uniform(0.45, 0.78) : 1.01) : 0;
  const axes: Vec3 = [rng.uniform(0.8, 1.25), rng.uniform(0.8, 1.25), rng.uniform(0.8, 1.2)];
  const satellites: Lesion['satellites'] = [];
  const count = Math.floor(rng.uniform(0, 3));
  for (let s = 0; s < count; s++) {
    const theta = rng.uniform(0, 2 * Math.PI);
    const phi = Math.acos(rng.uniform(-1, 1));
    const dir: Vec3 = [Math.sin(phi) * Math.cos(theta), Math.sin(phi) * Math.sin(theta), Math.cos(phi)];
    const distance = edemaRadius * rng.uniform(0.75, 1.1);
    satellites.push({
      centre: [centre[0] + dir[0] * distance, centre[1] + dir[1] * distance, centre[2] + dir[2] * distance],
      radius: edemaRadius * rng.uniform(0.25, 0.5),
    });
  }
  return finishLesion(rng, { centre, axes, edemaRadius, coreRadius, necrosisRadius, enhancing, necrosis, satellites }, [0.18, 0.28]);
}

type LesionPlan = Pick<Lesion, 'centre' | 'axes' | 'edemaRadius' | 'coreRadius' | 'necrosisRadius' | 'enhancing' | 'necrosis' | 'satellites' | 'coreTissue'>;

/** Orientation and shape noise of a planned lesion (the last draws of a lesion's random stream). */
function finishLesion(rng: Rng, plan: LesionPlan, irregularity: [number, number]): Lesion {
  // with the shape noise clamped to ±NOISE_LIMIT sd, every boundary (satellites included) stays
  // within 2.4 edema radii of the centre, so the tumour is evaluated only in that cube
  const reach = plan.edemaRadius * 2.4 + 3;
  const rot = randomRotation(rng, [Math.PI, Math.PI, Math.PI]);
  const lo = plan.centre.map((c) => c - reach) as Vec3;
  const hi = plan.centre.map((c) => c + reach) as Vec3;
  const shapeField = clampField(smoothNoise(rng.fork(1), lo, hi, 2, rng.uniform(10, 16)), NOISE_LIMIT);
  const fineField = clampField(smoothNoise(rng.fork(2), lo, hi, 1.5, 5), NOISE_LIMIT);
  const edemaIrregularity = rng.uniform(irregularity[0], irregularity[1]);
  return { ...plan, rot, reach, edemaIrregularity, shapeField, fineField };
}

/** where a broad-variety lesion sits; the weights are the share of foci placed there */
const SITES = [
  { name: 'frontal', weight: 0.26 },
  { name: 'parietal', weight: 0.18 },
  { name: 'temporal', weight: 0.2 },
  { name: 'occipital', weight: 0.12 },
  { name: 'deep', weight: 0.14 },
  { name: 'anywhere', weight: 0.04 },
  { name: 'cerebellum', weight: 0.06 },
] as const;

function pickSite(rng: Rng): (typeof SITES)[number]['name'] {
  let u = rng.next();
  for (const site of SITES) {
    if (u < site.weight) return site.name;
    u -= site.weight;
  }
  return 'anywhere';
}

/** A centre for a lesion of edema radius `r` mm at `site`, inside the brain with most of the lesion in it. */
function siteCentre(rng: Rng, site: (typeof SITES)[number]['name'], r: number): Vec3 {
  const side = rng.chance(0.5) ? -1 : 1;
  for (let attempt = 0; attempt < 200; attempt++) {
    let c: Vec3;
    // canonical frame: y grows posterior (frontal pole near y 30, occipital near 205), z superior
    switch (site) {
      case 'frontal': c = [MID_X + side * rng.uniform(4, 55), rng.uniform(35, 95), rng.uniform(60, 135)]; break;
      case 'parietal': c = [MID_X + side * rng.uniform(4, 58), rng.uniform(105, 175), rng.uniform(95, 140)]; break;
      case 'temporal': c = [MID_X + side * rng.uniform(35, 62), rng.uniform(80, 165), rng.uniform(40, 82)]; break;
      case 'occipital': c = [MID_X + side * rng.uniform(4, 50), rng.uniform(165, 205), rng.uniform(60, 120)]; break;
      case 'deep': c = [MID_X + side * rng.uniform(0, 30), rng.uniform(95, 140), rng.uniform(60, 100)]; break;
      case 'cerebellum': c = [MID_X + side * rng.uniform(0, 38), rng.uniform(150, 195), rng.uniform(20, 48)]; break;
      default: c = [rng.uniform(55, 185), rng.uniform(35, 205), rng.uniform(40, 140)];
    }
    const inside = site === 'cerebellum' ? radius(CEREBELLUM, ...c) < 0.8 - r / 60 : radius(CEREBRUM, ...c) < 0.93 - r / 90;
    if (inside) return c;
  }
  return site === 'cerebellum' ? [MID_X + side * 18, 172, 34] : [MID_X + side * 30, 110, 95];
}

/** How a variety with several foci sizes and places them. */
interface FocusPlan {
  /** whole-tumour volume range (ml), drawn log-uniform */
  totalMl: [number, number];
  /** chance that a case has more than one focus */
  multifocal: number;
  /** the centre of focus `index` of edema radius `r` mm */
  centre(rng: Rng, index: number, r: number): Vec3;
}

const BROAD_FOCI: FocusPlan = {
  totalMl: [1, 100],
  multifocal: 0.22,
  centre: (rng, index, r) => siteCentre(rng, index > 0 && rng.chance(0.4) ? 'anywhere' : pickSite(rng), r),
};

const FOCAL_FOCI: FocusPlan = {
  totalMl: [0.5, 10],
  multifocal: 0.35,
  centre: highCentre,
};

/** the varieties whose lesions planLesions places (classic has its own single-lesion planner) */
const FOCUS_PLANS: Partial<Record<PhantomVariety, FocusPlan>> = { broad: BROAD_FOCI, focal: FOCAL_FOCI };

/**
 * A centre high in the cerebrum (above the ventricles, up to the vertex) for a focus of edema radius
 * `r` mm: half beside or across the midline, half out on the convexity, within reach of the cortex.
 */
function highCentre(rng: Rng, _index: number, r: number): Vec3 {
  const side = rng.chance(0.5) ? -1 : 1;
  const [nearest, farthest] = rng.chance(0.5) ? [0, 12] : [12, 60];
  for (let attempt = 0; attempt < 200; attempt++) {
    const c: Vec3 = [MID_X + side * rng.uniform(nearest, farthest), rng.uniform(35, 200), rng.uniform(95, 142)];
    // 0 at the cerebrum's centre, 1 at its surface: outside the deep white matter, the whole focus inside
    const fromCentre = radius(CEREBRUM, ...c);
    if (fromCentre > 0.6 && fromCentre < 0.95 - r / 90) return c;
  }
  return [MID_X + side * 8, 90, 115];
}

/** The lesions of a broad or focal case: 1–3 foci sharing one whole-tumour volume. */
function planLesions(rng: Rng, options: PhantomOptions, plan: FocusPlan): Lesion[] {
  const totalMl = rng.logUniform(...plan.totalMl);
  const foci = rng.chance(plan.multifocal) ? (rng.chance(0.6) ? 2 : 3) : 1;
  const shares = Array.from({ length: foci }, () => rng.uniform(0.4, 1));
  const sum = shares.reduce((a, b) => a + b, 0);
  // enhancement and necrosis are properties of the case (one tumour, several foci)
  const enhancing = options.enhancing ?? rng.chance(0.62);
  const necrosis = !enhancing ? true : (options.necrosis ?? rng.chance(0.5));
  const lesions: Lesion[] = [];
  for (let f = 0; f < foci; f++) {
    const lesionRng = rng.fork(100 + f);
    const axes: Vec3 = [lesionRng.uniform(0.75, 1.3), lesionRng.uniform(0.75, 1.3), lesionRng.uniform(0.75, 1.25)];
    const ml = (totalMl * shares[f]!) / sum;
    // sphere of that volume, corrected for the stretch; the irregular boundary and clipping by
    // the brain surface and the ventricles move the actual volume by some tens of per cent
    const edemaRadius = Math.cbrt((3 * ml * 1000) / (4 * Math.PI) / (axes[0] * axes[1] * axes[2]));
    const centre = plan.centre(lesionRng, f, edemaRadius);
    // the core's share of the lesion radius: from a core hardly larger than a voxel inside wide
    // edema to a solid tumour with a thin rim of edema
    const coreShare = enhancing ? lesionRng.uniform(0.3, 0.85) : lesionRng.uniform(0.25, 0.92);
    const coreRadius = Math.max(1.2, edemaRadius * coreShare);
    const necrosisRadius = necrosis ? coreRadius * (enhancing ? lesionRng.uniform(0.4, 0.8) : 1.01) : 0;
    const satellites: Lesion['satellites'] = [];
    const count = edemaRadius > 10 ? Math.floor(lesionRng.uniform(0, 2.5)) : 0;
    for (let s = 0; s < count; s++) {
      const theta = lesionRng.uniform(0, 2 * Math.PI);
      const phi = Math.acos(lesionRng.uniform(-1, 1));
      const dir: Vec3 = [Math.sin(phi) * Math.cos(theta), Math.sin(phi) * Math.sin(theta), Math.cos(phi)];
      const distance = edemaRadius * lesionRng.uniform(0.75, 1.05);
      satellites.push({
        centre: [centre[0] + dir[0] * distance, centre[1] + dir[1] * distance, centre[2] + dir[2] * distance],
        radius: edemaRadius * lesionRng.uniform(0.2, 0.4),
      });
    }
    lesions.push(finishLesion(lesionRng, { centre, axes, edemaRadius, coreRadius, necrosisRadius, enhancing, necrosis, satellites, coreTissue: NET }, [0.12, 0.3]));
  }
  return lesions;
}

/**
 * Tissue fractions of the healthy brain at canonical position (x, y, z) into `fractions`.
 * Returns 0 for background; otherwise 1, with the depth below the brain surface (mm) in
 * scratch[0] and the ventricles' CSF fraction in scratch[1]. (Split from the voxel loop so that
 * V8 inlines the small helpers here; in the huge loop it did not, and boxed every result.)
 */
function brainFractions(x: number, y: number, z: number, fields: CanonicalFields, fractions: Float64Array, scratch: Float64Array): number {
  const { fine, coarse, folia, atFine, atCoarse } = fields;

  const rCerebrum = radius(CEREBRUM, x, y, z);
  const rCerebellum = radius(CEREBELLUM, x, y, z);
  const rStem = radius(BRAINSTEM, x, y, z);
  // beyond the largest surface ripple (1.2 mm × NOISE_LIMIT) of every compartment
  if (rCerebrum >= 1.08 && rCerebellum >= 1.15 && rStem >= 1.3) return 0;
  const dCerebrum = (1 - rCerebrum) * DEPTH_SCALE.cerebrum;
  const dCerebellum = (1 - rCerebellum) * DEPTH_SCALE.cerebellum;
  const dStem = (1 - rStem) * DEPTH_SCALE.brainstem;
  coarse.sampleInto(x, y, z, atCoarse);
  const low = atCoarse[1]!;
  const depth = Math.max(dCerebrum, dCerebellum, dStem) + 1.2 * low;
  if (depth <= 0) return 0;
  scratch[0] = depth;
  scratch[1] = 0;

  fractions.fill(0);
  fine.sampleInto(x, y, z, atFine);
  if (dCerebrum >= dCerebellum && dCerebrum >= dStem) {
    const n = atFine[0]!;
    const an = n < 0 ? -n : n;
    const sulcusDepth = 21 + 6 * atCoarse[0]!;
    const sulcus = (1 - smoothstep(0.06, 0.2, an)) * (1 - smoothstep(sulcusDepth - 2, sulcusDepth + 1, depth));
    const surface = 0.3 * (1 - smoothstep(0, 1.2, depth));
    let gm = Math.max(1 - smoothstep(2.2, 3.8, depth), (1 - smoothstep(0.6, 1.0, an)) * (1 - smoothstep(sulcusDepth, sulcusDepth + 3, depth)));
    // interhemispheric fissure: above the corpus callosum and in front of / behind it
    const mid = Math.abs(x - MID_X - 2.5 * low);
    const fissureOn = Math.max(smoothstep(93, 101, z), smoothstep(42, 52, Math.abs(y - 116)));
    const fissure = (1 - smoothstep(0.5, 1.5, mid)) * fissureOn;
    gm = Math.max(gm, (1 - smoothstep(3.5, 5, mid)) * fissureOn);
    // lateral ventricles: curved lobes either side of the midline
    const vy = (y - 114) / 36;
    const vz = (z - 86 + 0.0055 * (y - 114) * (y - 114)) / 10;
    const vx = Math.abs(x - MID_X) - (9 + 0.06 * Math.max(0, 114 - y)); // both lobes at once
    const rv = Math.sqrt((vx / 7) * (vx / 7) + vy * vy + vz * vz) + 0.08 * n;
    const ventricle = 1 - smoothstep(0.85, 1.05, rv);
    scratch[1] = ventricle;
    const deep = 1 - smoothstep(0.8, 1.05, Math.min(radius(DEEP_NUCLEI[0]!, x, y, z), radius(DEEP_NUCLEI[1]!, x, y, z)) + 0.05 * n);
    const csf = Math.max(sulcus, surface, fissure, ventricle);
    fractions[CSF] = csf;
    fractions[DEEP] = (1 - csf) * deep;
    fractions[GM] = (1 - csf) * (1 - deep) * gm;
    fractions[WM] = (1 - csf) * (1 - deep) * (1 - gm);
  } else if (dCerebellum >= dStem) {
    const f = folia.sample(x, y, z);
    const core = 1 - smoothstep(0.35, 0.55, rCerebellum);
    const wm = Math.max(core, smoothstep(0.25, 0.7, f) * smoothstep(3, 7, depth));
    const csf = Math.max(0.5 * (1 - smoothstep(0, 1.2, depth)), (1 - smoothstep(0.03, 0.12, Math.abs(f + 0.9))) * (1 - core));
    fractions[CSF] = csf;
    fractions[WM] = (1 - csf) * wm;
    fractions[GM] = (1 - csf) * (1 - wm);
  } else {
    const csf = 0.5 * (1 - smoothstep(0, 1.2, depth));
    fractions[CSF] = csf;
    fractions[WM] = (1 - csf) * 0.7;
    fractions[GM] = (1 - csf) * 0.3;
  }
  return 1;
}

/**
 * Adds the tumour at canonical position (x, y, z) to `fractions` (displacing the healthy tissue)
 * and returns its label: 0, 1 (necrotic / non-enhancing core), 2 (edema) or 4 (enhancing).
 * Where the edema of several foci meets, the focus with the larger edema fraction owns the voxel.
 */
function addTumour(x: number, y: number, z: number, lesions: readonly Lesion[], fractions: Float64Array, ventricle: number): number {
  let bestEdema = 0;
  let bestCore = 0;
  let bestNecrosis = 0;
  let best: Lesion | undefined;
  for (let l = 0; l < lesions.length; l++) {
    const tumour = lesions[l]!;
    const tx = x - tumour.centre[0];
    const ty = y - tumour.centre[1];
    const tz = z - tumour.centre[2];
    if (!(tx > -tumour.reach && tx < tumour.reach && ty > -tumour.reach && ty < tumour.reach && tz > -tumour.reach && tz < tumour.reach)) continue;
    const inv = tumour.rot;
    const [ax, ay, az] = tumour.axes;
    const { shapeField, fineField, edemaIrregularity } = tumour;
    // tumour, in its own rotated and stretched frame
    const ux = (inv[0]! * tx + inv[1]! * ty + inv[2]! * tz) / ax;
    const uy = (inv[3]! * tx + inv[4]! * ty + inv[5]! * tz) / ay;
    const uz = (inv[6]! * tx + inv[7]! * ty + inv[8]! * tz) / az;
    const r = Math.sqrt(ux * ux + uy * uy + uz * uz);
    const shape = shapeField.sample(x, y, z);
    const fine = fineField.sample(x, y, z);
    let edema = 1 - smoothstep(-0.7, 0.7, r - tumour.edemaRadius * (1 + edemaIrregularity * shape + 0.08 * fine));
    for (let s = 0; s < tumour.satellites.length; s++) {
      const satellite = tumour.satellites[s]!;
      const ex = x - satellite.centre[0];
      const ey = y - satellite.centre[1];
      const ez = z - satellite.centre[2];
      const rs = Math.sqrt(ex * ex + ey * ey + ez * ez);
      edema = Math.max(edema, 1 - smoothstep(-0.7, 0.7, rs - satellite.radius * (1 + 0.3 * shape + 0.1 * fine)));
    }
    const coreEdge = tumour.coreRadius * (1 + 0.1 * shape + 0.06 * fine);
    const core = 1 - smoothstep(-0.6, 0.6, r - coreEdge);
    const necrosis = tumour.necrosis ? 1 - smoothstep(-0.6, 0.6, r - (tumour.enhancing ? tumour.necrosisRadius * (1 + 0.12 * fine) : coreEdge)) : 0;
    // edema spreads through parenchyma, not into the ventricles' CSF
    edema = Math.max(edema * (1 - ventricle), core);
    if (edema > bestEdema) {
      bestEdema = edema;
      bestCore = core;
      bestNecrosis = necrosis;
      best = tumour;
    }
  }
  let label = 0;
  if (best) {
    const edema = bestEdema;
    const core = bestCore;
    const keep = 1 - edema;
    for (let t = 0; t < EDEMA; t++) fractions[t]! *= keep;
    fractions[EDEMA] = edema - core;
    if (best.enhancing) fractions[NEC] = core * bestNecrosis;
    else fractions[best.coreTissue ?? NEC] = core;
    fractions[ET] = best.enhancing ? core * (1 - bestNecrosis) : 0;
    if (core >= 0.5) label = best.enhancing && bestNecrosis < 0.5 ? 4 : 1;
    else if (edema >= 0.5) label = 2;
  }
  return label;
}

/** Generates one case in memory. Deterministic in (seed, index, options). */
export function generatePhantomCase(seed: number, index: number, options: PhantomOptions = {}): PhantomCase {
  const geometry = phantomGeometry(options.size ?? BRATS_DIMS);
  const [nx, ny, nz] = geometry.dims;
  const [sx, sy, sz] = geometry.spacing;
  const master = new Rng(mixSeed(seed, index));

  // --- random pose and smooth deformation: output voxel position p → canonical position q
  const pose = master.fork(1);
  const rot = randomRotation(pose, [0.09, 0.05, 0.1]);
  const scale: Vec3 = [pose.uniform(0.92, 1.08), pose.uniform(0.92, 1.08), pose.uniform(0.93, 1.07)];
  const shift: Vec3 = [pose.uniform(-5, 5), pose.uniform(-6, 6), pose.uniform(-4, 6)];
  const warpAmplitude = pose.uniform(2.5, 5);
  const warpFields = [0, 1, 2].map((a) => clampField(smoothNoise(pose.fork(10 + a), FRAME_LO, FRAME_HI, 6, 45), WARP_LIMIT));
  const pivot: Vec3 = [MID_X, 118, 77];
  const m = rot.map((v, i) => v / scale[i % 3]!);
  const maxWarp = warpAmplitude * WARP_LIMIT + 6; // + the surface ripple (1.2 mm per sd)
  // the warp moves a point by at most maxWarp mm, which changes a normalised radius by at most
  // maxWarp / (smallest semi-axis): beyond that margin a voxel is background for sure
  const farRadius = COMPARTMENTS.map((e) => 1 + maxWarp * Math.max(e.ix, e.iy, e.izUp, e.izDown));
  const rowStart = new Float64Array(3);
  const rowStep = new Float64Array([m[0]! * sx, m[3]! * sx, m[6]! * sx]);

  // --- anatomy and texture noise, all in the canonical frame
  const fields = master.fork(2);
  // channels: 0 fold (sulci at its zero crossings), 1 tissue texture
  const canonical: CanonicalFields = {
    fine: stackFields([smoothNoise(fields.fork(1), NOISE_LO, NOISE_HI, 2, fields.uniform(6, 7.5)), smoothNoise(fields.fork(4), NOISE_LO, NOISE_HI, 2, 6)]),
    // channels: 0 sulcal depth, 1 surface ripple and midline wander
    coarse: stackFields([
      clampField(smoothNoise(fields.fork(2), NOISE_LO, NOISE_HI, 6, 30), NOISE_LIMIT),
      clampField(smoothNoise(fields.fork(5), NOISE_LO, NOISE_HI, 6, 25), NOISE_LIMIT),
    ]),
    folia: smoothNoise(fields.fork(3), [60, 120, -10], [180, 220, 70], 1.2, 4.5),
    atFine: new Float64Array(2),
    atCoarse: new Float64Array(2),
  };

  // --- tumour
  const variety = options.variety ?? 'classic';
  if (!(PHANTOM_VARIETIES as readonly string[]).includes(variety)) throw new RangeError(`phantom variety must be one of ${PHANTOM_VARIETIES.join(', ')}, got ${variety}`);
  // focal shares broad's contrast, noise and bias ranges; only its lesions differ
  const wideRanges = variety !== 'classic';
  const tumourRng = master.fork(3);
  const focusPlan = FOCUS_PLANS[variety];
  const lesions = focusPlan ? planLesions(tumourRng, options, focusPlan) : [planClassicLesion(tumourRng, options)];

  // --- contrasts, scales, bias and noise per sequence
  const contrastRng = master.fork(4);
  const tables = PHANTOM_SEQUENCES.map((name) => {
    const base = CONTRAST[name];
    const jitter = base.map((v, t) => v * (1 + contrastRng.uniform(-1, 1) * (t >= EDEMA ? (wideRanges ? 0.16 : 0.08) : wideRanges ? 0.08 : 0.05)));
    const top = contrastRng.logUniform(330, 2000);
    const floor = FLOOR[name] * contrastRng.uniform(0.85, 1.15);
    // raw = top · (floor + (1 − floor) · normalised)
    return { name, raw: jitter.map((v) => top * (floor + (1 - floor) * v)), top, floor };
  });

  const biasFields = [0, 1].map((f) => smoothNoise(contrastRng.fork(20 + f), FRAME_LO, FRAME_HI, 6, 90));
  // everything sampled at the output position: channels 0–2 warp, 3–4 bias
  const frame = stackFields([...warpFields, ...biasFields]);
  // broad and focal: bias fields up to about ±30 % across the brain and noise from clean to grainy
  const bias = wideRanges ? 0.3 : 0.12;
  const biasMix = PHANTOM_SEQUENCES.map(() => [contrastRng.uniform(-bias, bias), contrastRng.uniform(-bias, bias)]);
  const noiseSigma = tables.map((t) => t.top * (wideRanges ? contrastRng.uniform(0.015, 0.06) : contrastRng.uniform(0.022, 0.038)));
  const noiseRng = master.fork(5);
  // the non-enhancing tumour tissue draws from a stream forked last, so classic cases keep their voxels
  const netRng = master.fork(6);
  for (const table of tables) {
    const v = wideRanges ? NET_CONTRAST[table.name] * (1 + netRng.uniform(-1, 1) * 0.12) : 0;
    table.raw.push(table.top * (table.floor + (1 - table.floor) * v));
  }

  const count = nx * ny * nz;
  const outputs = PHANTOM_SEQUENCES.map(() => new Int16Array(count));
  const seg = new Uint8Array(count);
  const fractions = new Float64Array(TISSUES);
  const atOutput = new Float64Array(5);
  const scratch = new Float64Array(2);

  for (let k = 0; k < nz; k++) {
    const pz = k * sz;
    for (let j = 0; j < ny; j++) {
      const py = j * sy;
      // the pose is affine, so each compartment (grown by the warp margin) covers one interval
      // of this row: only voxels in the union of the intervals can be brain
      const dy0 = py - pivot[1];
      const dz0 = pz - pivot[2];
      rowStart[0] = -pivot[0] * m[0]! + m[1]! * dy0 + m[2]! * dz0 + pivot[0] + shift[0];
      rowStart[1] = -pivot[0] * m[3]! + m[4]! * dy0 + m[5]! * dz0 + pivot[1] + shift[1];
      rowStart[2] = -pivot[0] * m[6]! + m[7]! * dy0 + m[8]! * dz0 + pivot[2] + shift[2];
      let iFirst = nx;
      let iLast = -1;
      for (let c = 0; c < 3; c++) {
        const span = rowInterval(COMPARTMENTS[c]!, rowStart, rowStep, farRadius[c]!);
        if (span) {
          iFirst = Math.min(iFirst, Math.max(0, Math.floor(span[0])));
          iLast = Math.max(iLast, Math.min(nx - 1, Math.ceil(span[1])));
        }
      }
      let offset = (k * ny + j) * nx + iFirst;
      for (let i = iFirst; i <= iLast; i++, offset++) {
        const px = i * sx;
        // canonical position
        const dx = px - pivot[0];
        const dy = py - pivot[1];
        const dz = pz - pivot[2];
        const x0 = m[0]! * dx + m[1]! * dy + m[2]! * dz + pivot[0] + shift[0];
        const y0 = m[3]! * dx + m[4]! * dy + m[5]! * dz + pivot[1] + shift[1];
        const z0 = m[6]! * dx + m[7]! * dy + m[8]! * dz + pivot[2] + shift[2];
        frame.sampleInto(px, py, pz, atOutput);
        const x = x0 + warpAmplitude * atOutput[0]!;
        const y = y0 + warpAmplitude * atOutput[1]!;
        const z = z0 + warpAmplitude * atOutput[2]!;

        if (!brainFractions(x, y, z, canonical, fractions, scratch)) continue;
        const label = addTumour(x, y, z, lesions, fractions, scratch[1]!);
        seg[offset] = label;

        const tex = canonical.atFine[1]!;
        const tumourTex = label ? 1 + 0.06 * tex : 1;
        for (let s = 0; s < 4; s++) {
          const raw = tables[s]!.raw;
          let v = 0;
          for (let t = 0; t < TISSUES; t++) v += fractions[t]! * raw[t]!;
          v *= (1 + 0.05 * tex) * tumourTex * Math.exp(biasMix[s]![0]! * atOutput[3]! + biasMix[s]![1]! * atOutput[4]!);
          const draw = noiseRng.int32();
          const sigma = noiseSigma[s]!;
          const re = v + sigma * GAUSS_TABLE[draw & GAUSS_MASK]!;
          const im = sigma * GAUSS_TABLE[(draw >>> GAUSS_SHIFT) & GAUSS_MASK]!;
          const magnitude = Math.round(Math.sqrt(re * re + im * im));
          // skull-stripped: the background is exactly 0, so brain voxels are at least 1
          outputs[s]![offset] = magnitude < 1 ? 1 : magnitude > 32767 ? 32767 : magnitude;
        }
      }
    }
  }

  const name = phantomCaseName(index);
  const labelCounts: Record<0 | 1 | 2 | 4, number> = { 0: 0, 1: 0, 2: 0, 4: 0 };
  const centroid: Vec3 = [0, 0, 0];
  for (let k = 0, i = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let x = 0; x < nx; x++, i++) {
        const label = seg[i]!;
        labelCounts[label as 0 | 1 | 2 | 4]++;
        if (label) {
          centroid[0] += x;
          centroid[1] += j;
          centroid[2] += k;
        }
      }
    }
  }
  const tumourVoxels = count - labelCounts[0];
  for (let a = 0; a < 3; a++) centroid[a] = tumourVoxels ? centroid[a]! / tumourVoxels : NaN;
  const meta = (suffix: string, description: string) => ({
    id: `${name}_${suffix}.nii.gz`,
    description,
    modality: suffix === 'seg' ? 'SEG' : 'MR',
    sources: [],
    extra: { phantom: { seed, index } },
  });
  const sequences = Object.fromEntries(
    PHANTOM_SEQUENCES.map((sequence, s) => [sequence, new Volume({ geometry, data: outputs[s]!, meta: meta(sequence, `phantom ${sequence}`) })]),
  ) as Record<PhantomSequence, Volume>;
  return {
    name,
    sequences,
    seg: new Volume({ geometry, data: seg, meta: meta('seg', 'phantom ground truth') }),
    info: {
      seed,
      index,
      enhancing: labelCounts[4] > 0,
      necrosis: labelCounts[1] > 0,
      tumourCentroid: centroid,
      edemaRadius: lesions[0]!.edemaRadius,
      coreRadius: lesions[0]!.coreRadius,
      labelCounts,
      variety,
      foci: lesions.length,
      wholeTumourMl: (tumourVoxels * sx * sy * sz) / 1000,
    },
  };
}
