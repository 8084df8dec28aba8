//! uid -> user name, cached (including misses, so an unknown uid costs one lookup).
use std::{collections::HashMap, sync::Arc};

#[derive(Default)]
pub struct Users {
    cache: HashMap<u32, Option<Arc<str>>>,
}

impl Users {
    pub fn name(&mut self, uid: u32) -> Option<Arc<str>> {
        self.cache
            .entry(uid)
            .or_insert_with(|| {
                nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                    .ok()
                    .flatten()
                    .map(|u| Arc::from(u.name.as_str()))
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn root_is_root() {
        assert_eq!(super::Users::default().name(0).as_deref(), Some("root"));
    }
}
