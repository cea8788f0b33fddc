export * from './regions.ts';
export * from './evaluate.ts';
export { hd95OfMasks, imageDiagonal, percentileLinear, pooledSurfaceDistances, squaredDistanceTransform, surfaceOf } from './distance.ts';
