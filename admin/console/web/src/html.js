import { h } from "preact";
import htm from "htm";

// html is htm bound to Preact: JSX-like templates without a compile step.
export const html = htm.bind(h);
