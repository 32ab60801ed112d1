//! The two protocols: `spawn` (spawner ⇄ supervisor, DESIGN §1) and `control` (supervisor ⇄
//! taskmasterctl, DESIGN §6).

pub mod attach;
pub mod control;
pub mod spawn;
