/**
 * Paths of modules started as processes of their own (the services process, the namespace
 * probe helper). The sources run as .ts (Node strips the types) and the build (`npm run
 * build`, tsconfig.build.json) as .js in dist/: a sibling has the extension of the module
 * that asks for it.
 */
export function siblingModule(from: string, name: string): URL {
  const extension = from.endsWith(".ts") ? ".ts" : ".js";
  return new URL(`./${name}${extension}`, from);
}
