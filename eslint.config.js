// Lint rules: the recommended sets, plus the boundary rules of DESIGN §2 —
// src/core imports no I/O module, no plugin, no dbus/ or networkd/;
// src/wireguard (the library every backend uses) imports no plugin, dbus/ or networkd/;
// a plugin imports src/**, dbus/, networkd/ and its own folder, never another plugin;
// src/crypto is a leaf: it imports nothing from src/core (the core may use it).
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", "test/system/cache/", "packaging/build/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    },
  },
  {
    files: ["src/core/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              group: [
                "node:dgram",
                "node:fs",
                "node:fs/*",
                "node:child_process",
                "node:net",
                "node:http",
                "dgram",
                "fs",
                "child_process",
                "net",
              ],
              message: "src/core is pure: inject I/O (DESIGN §2).",
            },
            {
              group: ["**/plugins/**", "**/dbus/**", "**/networkd/**"],
              message: "src/core imports no backend.",
            },
          ],
        },
      ],
      // Time and randomness are injected (DESIGN §2): only clock.ts touches the real ones.
      "no-restricted-properties": [
        "error",
        { object: "Date", property: "now", message: "src/core reads time from an injected Clock." },
        { object: "Math", property: "random", message: "src/core takes randomness from its caller." },
      ],
      "no-restricted-globals": [
        "error",
        { name: "setTimeout", message: "src/core schedules through an injected Clock." },
        { name: "setInterval", message: "src/core schedules through an injected Clock." },
        { name: "setImmediate", message: "src/core schedules through an injected Clock." },
      ],
    },
  },
  {
    files: ["src/wireguard/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              regex: "(^|/)(plugins|dbus|networkd)(/|$)",
              message:
                "src/wireguard is shared by every backend: it imports no plugin, dbus/ or networkd/ (DESIGN §2).",
            },
          ],
        },
      ],
    },
  },
  {
    files: ["src/crypto/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              regex: "(^|/)(core|plugins|dbus|networkd)(/|$)",
              message: "src/crypto is a leaf: what it needs from the protocol lives in src/crypto.",
            },
          ],
        },
      ],
    },
  },
  {
    // plugins/X/... sits two levels below the root: "./x" is its own folder,
    // "../../src/x" the core; "../Y/x" or ".../plugins/Y/x" is another plugin.
    files: ["plugins/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              regex: "^\\.\\./(?!\\.\\./)|(^|/)plugins/",
              message:
                "Plugins never import each other: shared code goes to src/wireguard or src/core (DESIGN §2).",
            },
          ],
        },
      ],
    },
  },
  {
    files: ["src/core/clock.ts"],
    rules: { "no-restricted-properties": "off", "no-restricted-globals": "off" },
  },
  // The daemon and the registry client run under the fake clock too (issue 9): same rule, their own words.
  {
    files: ["src/daemon/**/*.ts", "src/client/**/*.ts"],
    rules: {
      "no-restricted-properties": [
        "error",
        { object: "Date", property: "now", message: "the daemon reads time from its injected Clock." },
        {
          object: "Math",
          property: "random",
          message: "the daemon takes randomness from an injected Random.",
        },
      ],
      "no-restricted-globals": [
        "error",
        { name: "setTimeout", message: "the daemon schedules through its injected Clock." },
        { name: "setInterval", message: "the daemon schedules through its injected Clock." },
        { name: "setImmediate", message: "the daemon schedules through its injected Clock." },
      ],
    },
  },
);
