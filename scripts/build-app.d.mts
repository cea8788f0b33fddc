export function buildApp(options?: { quiet?: boolean }): Promise<void>;
