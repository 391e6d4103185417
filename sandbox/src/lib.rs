//! The hands: the sandbox daemon that executes the agent toolset inside a sandbox pod, authenticated by a
//! per-sandbox token. (Filled by the hands issue.)
