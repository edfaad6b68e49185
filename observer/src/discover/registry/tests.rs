use super::*;

fn worker(master: u32, slot: u32, app: &str) -> Option<WorkerRef> {
    let app = app.into();
    Some(WorkerRef { master, slot, app })
}

#[test]
fn slots_are_lowest_free_and_reused() {
    let mut reg = Registry::new();
    assert!(reg.add_master(100, 5000, "shop".to_owned()));
    assert_eq!(reg.add_worker(100, 101), worker(100, 0, "shop"));
    assert_eq!(reg.add_worker(100, 102), worker(100, 1, "shop"));
    assert_eq!(reg.add_worker(100, 103), worker(100, 2, "shop"));

    // Worker 102 dies; its replacement takes slot 1, the next one slot 3.
    let removed = Removed::Worker {
        master: 100,
        slot: 1,
        app: "shop".into(),
        slot_empty: true,
    };
    assert_eq!(reg.remove(102), removed);
    assert_eq!(reg.add_worker(100, 104), worker(100, 1, "shop"));
    assert_eq!(reg.add_worker(100, 105), worker(100, 3, "shop"));

    // Two free slots: the lowest goes first.
    reg.remove(103);
    reg.remove(101);
    assert_eq!(reg.add_worker(100, 106), worker(100, 0, "shop"));
    assert_eq!(reg.add_worker(100, 107), worker(100, 2, "shop"));

    assert_eq!(
        reg.workers_of(100),
        vec![(106, 0), (104, 1), (107, 2), (105, 3)]
    );
    assert_eq!(
        reg.counts(),
        Counts {
            masters: 1,
            workers: 4
        }
    );
}

#[test]
fn slots_are_per_instance() {
    let mut reg = Registry::new();
    reg.add_master(100, 1, "a".to_owned());
    reg.add_master(200, 2, "b".to_owned());
    assert_eq!(reg.add_worker(100, 101), worker(100, 0, "a"));
    assert_eq!(reg.add_worker(200, 201), worker(200, 0, "b"));
    assert_eq!(reg.add_worker(200, 202), worker(200, 1, "b"));
    assert_eq!(reg.worker(202), worker(200, 1, "b"));
    assert_eq!(reg.workers_of(100), vec![(101, 0)]);
}

#[test]
fn removing_a_master_takes_its_workers() {
    let mut reg = Registry::new();
    reg.add_master(100, 1, "a".to_owned());
    reg.add_master(200, 2, "b".to_owned());
    reg.add_worker(100, 101);
    reg.add_worker(100, 102);
    reg.add_worker(200, 201);
    reg.remove(101);
    reg.add_worker(100, 103);

    let removed = Removed::Master {
        app: "a".into(),
        workers: vec![(103, 0), (102, 1)],
        last: true,
    };
    assert_eq!(reg.remove(100), removed);
    assert_eq!(reg.worker(102), None);
    assert_eq!(reg.worker(103), None);
    assert!(!reg.is_master(100));
    assert_eq!(reg.masters(), vec![200]);
    assert_eq!(
        reg.counts(),
        Counts {
            masters: 1,
            workers: 1
        }
    );
    assert_eq!(reg.remove(100), Removed::NotKnown);
    assert_eq!(reg.remove(102), Removed::NotKnown);
}

#[test]
fn duplicates_and_unknown_pids() {
    let mut reg = Registry::new();
    assert!(reg.add_master(100, 1, "a".to_owned()));
    assert!(!reg.add_master(100, 1, "a".to_owned()));
    assert_eq!(reg.app(100).as_deref(), Some("a"));

    // A worker of an unknown master, a master as a worker, a worker re-added.
    assert_eq!(reg.add_worker(999, 101), None);
    assert_eq!(reg.add_worker(100, 100), None);
    assert_eq!(reg.add_worker(100, 101), worker(100, 0, "a"));
    assert_eq!(reg.add_worker(100, 101), worker(100, 0, "a"));
    assert!(!reg.add_master(101, 9, "x".to_owned()));

    // Another master cannot claim the worker.
    reg.add_master(200, 2, "b".to_owned());
    assert_eq!(reg.add_worker(200, 101), None);
    assert_eq!(reg.workers_of(200), vec![]);

    assert_eq!(reg.worker(555), None);
    assert!(!reg.is_master(555));
    assert_eq!(reg.workers_of(555), vec![]);
    assert_eq!(reg.remove(555), Removed::NotKnown);
    assert_eq!(
        reg.counts(),
        Counts {
            masters: 2,
            workers: 1
        }
    );
}

#[test]
fn same_names_get_the_master_pid() {
    let mut reg = Registry::new();
    reg.add_master(100, 1, "shop".to_owned());
    reg.add_master(200, 2, "shop".to_owned());
    reg.add_master(300, 3, "shop#200".to_owned());
    assert_eq!(reg.app(100).as_deref(), Some("shop"));
    assert_eq!(reg.app(200).as_deref(), Some("shop#200"));
    assert_eq!(reg.app(300).as_deref(), Some("shop#200#300"));
    assert_eq!(reg.add_worker(200, 201), worker(200, 0, "shop#200"));

    // Once the first is gone its name is free again; the second keeps its own.
    reg.remove(100);
    reg.add_master(400, 4, "shop".to_owned());
    assert_eq!(reg.app(400).as_deref(), Some("shop"));
    assert_eq!(reg.app(200).as_deref(), Some("shop#200"));
}

#[test]
fn start_times_detect_reuse() {
    let mut reg = Registry::new();
    reg.add_master(100, 5000, "a".to_owned());
    reg.add_worker(100, 101);
    assert_eq!(reg.is_same(100, 5000), Some(true));
    assert_eq!(reg.is_same(100, 7000), Some(false));
    assert_eq!(reg.is_same(101, 5100), None);
    assert!(reg.set_start_time(101, 5100));
    assert_eq!(reg.is_same(101, 5100), Some(true));
    assert_eq!(reg.is_same(101, 5101), Some(false));
    assert!(!reg.set_start_time(555, 1));
    assert_eq!(reg.is_same(555, 1), None);
}

#[test]
fn roles_map_to_the_kernel_values() {
    assert_eq!(Role::Master.kernel_value(), 1);
    assert_eq!(Role::Worker.kernel_value(), 2);
}

const S: u64 = 1_000_000_000;

/// A master `100` called "shop" with workers 101 (slot 0) and 102 (slot 1).
fn shop() -> Registry {
    let mut reg = Registry::new();
    reg.add_master(100, 1, "shop".to_owned());
    reg.add_forked(100, 101, S);
    reg.add_forked(100, 102, S);
    reg
}

#[test]
fn a_reloads_new_workers_take_the_old_slots_before_the_old_ones_leave() {
    let mut reg = shop();
    reg.reloading(100, 10 * S);

    // Gunicorn forks both new workers before it stops an old one.
    assert_eq!(reg.add_forked(100, 201, 11 * S), worker(100, 0, "shop"));
    assert_eq!(reg.add_forked(100, 202, 11 * S), worker(100, 1, "shop"));
    // The old workers still count in their slots until they exit.
    assert_eq!(reg.worker(101), worker(100, 0, "shop"));
    assert_eq!(
        reg.workers_of(100),
        vec![(101, 0), (201, 0), (102, 1), (202, 1)]
    );
    assert_eq!(reg.counts().workers, 4);

    let left = |slot| Removed::Worker {
        master: 100,
        slot,
        app: "shop".into(),
        slot_empty: false,
    };
    assert_eq!(reg.remove(101), left(0));
    assert_eq!(reg.remove(102), left(1));
    assert_eq!(reg.workers_of(100), vec![(201, 0), (202, 1)]);

    // A later recycle is a plain replacement in the freed slot.
    reg.remove(201);
    assert_eq!(reg.add_forked(100, 203, 12 * S), worker(100, 0, "shop"));
    // With every slot held and nothing due, a fork (TTIN) opens a new slot.
    assert_eq!(reg.add_forked(100, 204, 13 * S), worker(100, 2, "shop"));
}

#[test]
fn a_reload_that_shrinks_leaves_the_extra_slot_empty_and_one_that_grows_adds_slots() {
    let mut reg = shop();
    reg.add_forked(100, 103, S);
    reg.reloading(100, 10 * S);
    // Down from 3 workers to 2: the two oldest slots are handed over.
    assert_eq!(reg.add_forked(100, 201, 11 * S), worker(100, 0, "shop"));
    assert_eq!(reg.add_forked(100, 202, 11 * S), worker(100, 1, "shop"));
    let gone = Removed::Worker {
        master: 100,
        slot: 2,
        app: "shop".into(),
        slot_empty: true,
    };
    assert_eq!(reg.remove(103), gone);
    reg.remove(101);
    reg.remove(102);

    // Up from 2 to 3: the third new worker gets a new slot.
    reg.reloading(100, 20 * S);
    assert_eq!(reg.add_forked(100, 301, 21 * S), worker(100, 0, "shop"));
    assert_eq!(reg.add_forked(100, 302, 21 * S), worker(100, 1, "shop"));
    assert_eq!(reg.add_forked(100, 303, 21 * S), worker(100, 2, "shop"));
}

#[test]
fn handover_prefers_free_slots_skips_departed_workers_and_expires() {
    let mut reg = shop();
    reg.reloading(100, 10 * S);
    // Worker 101 crashed after the HUP: the first new worker fills its free slot, and the
    // due entry of 101 is skipped, so the second takes over 102's.
    reg.remove(101);
    assert_eq!(reg.add_forked(100, 201, 11 * S), worker(100, 0, "shop"));
    assert_eq!(reg.add_forked(100, 202, 11 * S), worker(100, 1, "shop"));
    assert_eq!(reg.workers_of(100), vec![(201, 0), (102, 1), (202, 1)]);

    // A HUP whose forks come after the window hands nothing over.
    let mut reg = shop();
    reg.reloading(100, 10 * S);
    let late = 10 * S + HANDOVER_WINDOW_NS + 1;
    assert_eq!(reg.add_forked(100, 201, late), worker(100, 2, "shop"));

    // Scanned workers never take over a slot.
    let mut reg = shop();
    reg.reloading(100, 10 * S);
    assert_eq!(reg.add_worker(100, 201), worker(100, 2, "shop"));
}

#[test]
fn two_reloads_in_a_row_stack_the_leaving_workers() {
    let mut reg = shop();
    reg.reloading(100, 10 * S);
    reg.add_forked(100, 201, 11 * S);
    reg.add_forked(100, 202, 11 * S);
    reg.reloading(100, 12 * S);
    assert_eq!(reg.add_forked(100, 301, 13 * S), worker(100, 0, "shop"));
    assert_eq!(reg.add_forked(100, 302, 13 * S), worker(100, 1, "shop"));
    assert_eq!(
        reg.workers_of(100),
        vec![(101, 0), (201, 0), (301, 0), (102, 1), (202, 1), (302, 1)]
    );
}

#[test]
fn a_usr2_successor_shares_the_name_and_takes_over_the_slots() {
    let mut reg = shop();
    reg.add_master(500, 5, "shop".to_owned());
    assert_eq!(reg.app(500).as_deref(), Some("shop#500"));

    // The USR2 child is first forked like a worker, then execs into a master.
    assert_eq!(reg.add_forked(100, 300, 10 * S), worker(100, 2, "shop"));
    reg.remove(300);
    assert!(!reg.add_successor(300, 3, "other", 100, Some(10 * S)));
    assert!(!reg.add_successor(300, 3, "shop", 999, Some(10 * S)));
    assert!(reg.add_successor(300, 3, "shop", 100, Some(10 * S)));
    assert_eq!(reg.app(300).as_deref(), Some("shop"));
    assert!(reg.is_newest_master(300) && !reg.is_newest_master(100));

    // Its workers take the slots of the old master's.
    assert_eq!(reg.add_forked(300, 301, 12 * S), worker(300, 0, "shop"));
    assert_eq!(reg.add_forked(300, 302, 12 * S), worker(300, 1, "shop"));
    // A fork of the old master meanwhile gets nothing due to the new one.
    assert_eq!(reg.add_forked(100, 103, 12 * S), worker(100, 2, "shop"));

    // The old master stops: its workers go with it, the instance stays.
    let old = Removed::Master {
        app: "shop".into(),
        workers: vec![(101, 0), (102, 1), (103, 2)],
        last: false,
    };
    assert_eq!(reg.remove(100), old);
    assert_eq!(reg.app(300).as_deref(), Some("shop"));
    assert_eq!(reg.workers_of(300), vec![(301, 0), (302, 1)]);
    assert!(reg.is_newest_master(300));
    assert_eq!(reg.masters(), vec![300, 500]);

    // The name is freed only with the instance's last master.
    assert!(reg.add_master(600, 6, "shop".to_owned()));
    assert_eq!(reg.app(600).as_deref(), Some("shop#600"));
    let last = Removed::Master {
        app: "shop".into(),
        workers: vec![(301, 0), (302, 1)],
        last: true,
    };
    assert_eq!(reg.remove(300), last);
    assert!(reg.add_master(700, 7, "shop".to_owned()));
    assert_eq!(reg.app(700).as_deref(), Some("shop"));
}

#[test]
fn a_scan_joins_a_usr2_successor_to_its_parents_instance() {
    let mut reg = shop();
    // Found by a scan: no start time to hand slots over from.
    assert!(reg.add_successor(300, 3, "shop", 100, None));
    assert_eq!(reg.add_forked(300, 301, 12 * S), worker(300, 2, "shop"));
}
