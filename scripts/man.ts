// Writes the manual pages (man/floatip.8, man/floatip.yaml.5) from the program's own command
// table and config schema (src/cli/manual.ts). npm's prepack runs it; package.json's `man`
// field installs the pages with the package.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { commandManPage, configManPage } from "../src/cli/manual.ts";

const dir = process.argv[2] ?? join(import.meta.dirname, "..", "man");
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, "floatip.8"), await commandManPage());
writeFileSync(join(dir, "floatip.yaml.5"), configManPage());
console.log(`manual pages written to ${dir}`);
