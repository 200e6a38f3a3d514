// dist/cjs holds the CommonJS build (tsconfig.cjs.json); this package.json makes Node read its .js files as CommonJS
// (the package itself is "type": "module").
import { mkdirSync, writeFileSync } from "node:fs";

mkdirSync("dist/cjs", { recursive: true });
writeFileSync("dist/cjs/package.json", `${JSON.stringify({ type: "commonjs" }, null, 2)}\n`);
