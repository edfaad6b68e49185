//! The routes of one app, capped: the first `limit` distinct routes keep their own series,
//! every later one is counted under `other`.
//!
//! First come, first kept: the routes an app serves in its first minutes are its real ones,
//! and a later flood of odd paths (a scanner, ids the templating does not recognise) cannot
//! push them out. The cap holds for the app's lifetime, so a series never changes meaning.

use std::collections::HashMap;

use crate::http::Route;

/// Default number of distinct routes per app before the rest fold into `other`.
pub const DEFAULT_ROUTE_LIMIT: usize = 100;

/// An index into an app's [`Routes`]; what the per-slot maps key on, so recording a request
/// copies two bytes instead of a route.
pub type RouteId = u16;

#[derive(Debug, Clone)]
pub struct Routes {
    ids: HashMap<Route, RouteId>,
    names: Vec<Route>,
    /// Routes kept against the limit: all but `other` and [`Route::NONE`].
    kept: usize,
    limit: usize,
}

impl Routes {
    /// Id 0 is always `other`, so the overflow has a home before any route is seen.
    pub const OTHER: RouteId = 0;

    pub fn new(limit: usize) -> Self {
        // A RouteId must index every kept route plus `other`.
        let limit = limit.min(usize::from(RouteId::MAX));
        Self {
            ids: HashMap::from([(Route::OTHER, Self::OTHER)]),
            names: vec![Route::OTHER],
            kept: 0,
            limit,
        }
    }

    /// The id of `route`, adding it if the cap allows; `other` once it does not. Allocates
    /// only when a new route is added.
    pub fn id(&mut self, route: &Route) -> RouteId {
        if let Some(&id) = self.ids.get(route) {
            return id;
        }
        // With the label off every request carries NONE: one value, never folded.
        if !route.is_none() {
            if self.kept >= self.limit {
                return Self::OTHER;
            }
            self.kept += 1;
        }
        let id = RouteId::try_from(self.names.len()).unwrap_or(Self::OTHER);
        self.names.push(*route);
        self.ids.insert(*route, id);
        id
    }

    pub fn name(&self, id: RouteId) -> &Route {
        self.names.get(usize::from(id)).unwrap_or(&Route::OTHER)
    }

    /// Routes kept against the limit.
    pub fn len(&self) -> usize {
        self.kept
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for Routes {
    fn default() -> Self {
        Self::new(DEFAULT_ROUTE_LIMIT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::RouteMode;

    fn route(path: &str) -> Route {
        Route::of_target(path.as_bytes(), RouteMode::Raw)
    }

    #[test]
    fn first_routes_are_kept_and_the_rest_fold_into_other() {
        let mut routes = Routes::new(2);
        let a = routes.id(&route("/a"));
        let b = routes.id(&route("/b"));
        assert_eq!((a, b), (1, 2));
        assert_eq!(routes.id(&route("/c")), Routes::OTHER);
        assert_eq!(routes.id(&route("/d")), Routes::OTHER);
        // Kept routes stay theirs after the cap is reached.
        assert_eq!(routes.id(&route("/a")), a);
        assert_eq!(routes.name(b).as_str(), "/b");
        assert_eq!(routes.name(Routes::OTHER).as_str(), "other");
        assert_eq!(routes.len(), 2);
    }

    #[test]
    fn other_and_none_do_not_use_up_the_cap() {
        let mut routes = Routes::new(1);
        assert_eq!(routes.id(&Route::OTHER), Routes::OTHER);
        let none = routes.id(&Route::NONE);
        assert_eq!(routes.name(none), &Route::NONE);
        let x = routes.id(&route("/x"));
        assert_eq!(routes.name(x).as_str(), "/x");
        assert_eq!(routes.id(&route("/y")), Routes::OTHER);
        assert_eq!(routes.id(&Route::NONE), none);
        assert_eq!(routes.len(), 1);
    }

    #[test]
    fn a_zero_limit_folds_every_route_but_none() {
        let mut routes = Routes::new(0);
        assert_eq!(routes.id(&route("/a")), Routes::OTHER);
        assert_ne!(routes.id(&Route::NONE), Routes::OTHER);
        assert!(routes.is_empty());
    }
}
