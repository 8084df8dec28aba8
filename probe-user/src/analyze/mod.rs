//! The analyze stage, between enrich and the output filter: it reads enriched events and may
//! add events of its own (`alert`, `response.*`). Its rooms, as they land: `rules` (Sigma),
//! `ioc`, `baseline` (learned profiles) and `respond` (actions). Empty for now.
