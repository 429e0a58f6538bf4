//! Providers: what stands behind a model. An OpenAI-compatible endpoint
//! (`openai`, with its SSE framer `sse`), a managed server process
//! (`server`), a command adapter over stdin/stdout (`adapter`) and Foundry
//! Local (`foundry`). Process control shared by the managed kinds lives in
//! `process`. Providers measure one request at a time; they never decide
//! what to run or where results go.

pub mod adapter;
pub mod foundry;
pub mod openai;
pub mod server;
pub mod sse;
