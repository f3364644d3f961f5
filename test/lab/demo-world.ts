// The demo's world (demo.ts): a registry and a hub on public hosts and one
// edge per kind of network. Shared with the lab test that pins the port-shifting case
// seen in the demo (portshift.test.ts), so both run in the same world.

import type { World } from "./world.js";

export const DEMO_EDGES = ["pub", "fc", "ar", "pr", "ps", "sym"] as const;
/** Joins with a hub token: relays for the pairs that cannot go direct (sym ↔ pr). */
export const DEMO_HUB = "hub";
export const DEMO_NAT_OF: Readonly<Record<(typeof DEMO_EDGES)[number], string>> = {
  pub: "public",
  fc: "full cone",
  ar: "address-restricted",
  pr: "port-restricted",
  ps: "port-shifting",
  sym: "symmetric",
};

export const DEMO_WORLD: World = {
  routers: [
    { name: "r-fc", nat: "full-cone", v6: false },
    { name: "r-ar", nat: "address-restricted", v6: false },
    { name: "r-pr", nat: "port-restricted" },
    { name: "r-ps", nat: "port-shifting", v6: false },
    { name: "r-sym", nat: "symmetric", v6: false },
  ],
  hosts: [
    { name: "reg" },
    { name: DEMO_HUB },
    { name: "pub" },
    { name: "fc", router: "r-fc", v6: false },
    { name: "ar", router: "r-ar", v6: false },
    { name: "pr", router: "r-pr" },
    { name: "ps", router: "r-ps", v6: false },
    { name: "sym", router: "r-sym", v6: false },
  ],
};
