"""Free runs: each stylist's free time per location and local date, kept exact by triggers.

A free run is a stretch of consecutive open slots of one length (its `step`) on one local date that
no confirmed booking overlaps. `/v1/dates` counts free starts from these rows instead of from every
slot (`salon.public_times.free_times`); live holds are taken off at read time, so holds, their
expiry and the sweep never write here.

The triggers recount the runs of every (stylist, location, local date) a statement touched:
slots inserted, changed or deleted, and confirmed bookings made, moved or ended (their slots'
dates, at every location of the stylist). Before recounting they take the stylists' advisory
locks (`salon.infra.locks`, already held by every writer of the product), so two writers of one
stylist recount one after the other and the later sees the earlier's commit.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
CREATE TABLE IF NOT EXISTS scheduler.free_runs (
    location_id uuid NOT NULL,
    local_date date NOT NULL,
    stylist_id uuid NOT NULL,
    start_at timestamptz NOT NULL,
    end_at timestamptz NOT NULL,
    step interval NOT NULL,
    PRIMARY KEY (location_id, local_date, stylist_id, start_at)
);

-- The stylists' advisory locks, sorted: the keys and the order of salon.infra.locks.
CREATE OR REPLACE FUNCTION scheduler.lock_stylists(stylists uuid[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    one uuid;
BEGIN
    FOR one IN SELECT DISTINCT u FROM unnest(stylists) AS u ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(hashtextextended('stylist:' || one::text, 0));
    END LOOP;
END $$;

-- The runs of these (stylist, location, local date) keys, recounted from the slots and the
-- confirmed bookings, one stylist at a time, for every pair of its keys' locations and dates
-- (the keys themselves, plus a few more when one statement touched a stylist at two
-- locations: recounting more is still exact). The stylist's slots over the span of its dates
-- are read by the (stylist_id, start_at) index and filtered by arrays, never joined to the
-- keys: a join let the planner walk the (location_id, local_date) index (every stylist's
-- slots of each date: 38 us a slot at 100 stylists a location, against 4-6), or, with the
-- statistics of a table analyzed while small, loop over the slots once per key (minutes for
-- a bulk COPY).
CREATE OR REPLACE FUNCTION scheduler.recount_free_runs(
    stylists uuid[], locations uuid[], dates date[]
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    one uuid;
    places uuid[];
    days date[];
BEGIN
    IF stylists IS NULL OR cardinality(stylists) = 0 THEN
        RETURN;
    END IF;
    -- A writer of the product holds them already.
    PERFORM scheduler.lock_stylists(stylists);
    FOR one, places, days IN
        SELECT u.s, array_agg(DISTINCT u.l), array_agg(DISTINCT u.d)
        FROM unnest(stylists, locations, dates) AS u(s, l, d) GROUP BY u.s
    LOOP
        DELETE FROM scheduler.free_runs
        WHERE stylist_id = one AND location_id = ANY(places) AND local_date = ANY(days);
        INSERT INTO scheduler.free_runs
            (location_id, local_date, stylist_id, start_at, end_at, step)
        -- Any zone's local date lies inside these UTC bounds.
        WITH span AS (
            SELECT CAST(min(d) AS timestamp) AT TIME ZONE 'UTC' - interval '1 day' AS lo,
                   CAST(max(d) AS timestamp) AT TIME ZONE 'UTC' + interval '2 days' AS hi
            FROM unnest(days) AS d
        ),
        -- The stylist's confirmed bookings, listed under every UTC day a slot overlapping
        -- them can start on (slots are shorter than a day): the anti-join below hashes on
        -- the day instead of probing an index per slot.
        busy AS MATERIALIZED (
            SELECT b.start_at, b.end_at, CAST(d AS date) AS day
            FROM span,
                 scheduler.bookings b,
                 generate_series(
                     date_trunc('day', b.start_at AT TIME ZONE 'UTC') - interval '1 day',
                     date_trunc('day', b.end_at AT TIME ZONE 'UTC'),
                     interval '1 day') AS d
            WHERE b.stylist_id = one AND b.status = 'confirmed'
              AND b.end_at > span.lo - interval '1 day' AND b.start_at < span.hi
        ),
        free AS (
            SELECT sl.location_id, sl.local_date, sl.start_at, sl.end_at
            FROM span
            JOIN scheduler.slot_instances sl
              ON sl.stylist_id = one AND sl.start_at >= span.lo AND sl.start_at < span.hi
            WHERE sl.status = 'open'
              AND sl.location_id = ANY(places) AND sl.local_date = ANY(days)
              AND NOT EXISTS (
                  SELECT 1 FROM busy b
                  WHERE b.day = CAST(sl.start_at AT TIME ZONE 'UTC' AS date)
                    AND b.start_at < sl.end_at AND b.end_at > sl.start_at)
        ),
        marked AS (
            SELECT *, CASE WHEN lag(end_at) OVER w = start_at
                            AND lag(end_at - start_at) OVER w = end_at - start_at
                           THEN 0 ELSE 1 END AS brk
            FROM free WINDOW w AS (PARTITION BY location_id, local_date ORDER BY start_at)
        ),
        numbered AS (
            SELECT *, sum(brk) OVER w AS run
            FROM marked WINDOW w AS (PARTITION BY location_id, local_date ORDER BY start_at)
        )
        SELECT location_id, local_date, one, min(start_at), max(end_at),
               min(end_at - start_at)
        FROM numbered
        GROUP BY location_id, local_date, run;
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION scheduler.slots_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM scheduler.recount_free_runs(
            array_agg(stylist_id), array_agg(location_id), array_agg(local_date))
        FROM (SELECT DISTINCT stylist_id, location_id, local_date FROM new_slots) k;
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM scheduler.recount_free_runs(
            array_agg(stylist_id), array_agg(location_id), array_agg(local_date))
        FROM (SELECT DISTINCT stylist_id, location_id, local_date FROM old_slots) k;
    ELSE
        -- A changed slot's key before and after the change.
        PERFORM scheduler.recount_free_runs(
            array_agg(stylist_id), array_agg(location_id), array_agg(local_date))
        FROM (
            SELECT DISTINCT k.stylist_id, k.location_id, k.local_date
            FROM old_slots o JOIN new_slots n ON n.id = o.id,
            LATERAL (VALUES (o.stylist_id, o.location_id, o.local_date),
                            (n.stylist_id, n.location_id, n.local_date))
                AS k(stylist_id, location_id, local_date)
            WHERE (o.stylist_id, o.location_id, o.local_date, o.start_at, o.end_at, o.status)
                  IS DISTINCT FROM
                  (n.stylist_id, n.location_id, n.local_date, n.start_at, n.end_at, n.status)
        ) k;
    END IF;
    RETURN NULL;
END $$;

-- The keys of the slots these stylists' time ranges overlap, at any location, recounted.
CREATE OR REPLACE FUNCTION scheduler.recount_free_runs_over(
    stylists uuid[], starts timestamptz[], ends timestamptz[]
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF stylists IS NULL OR cardinality(stylists) = 0 THEN
        RETURN;
    END IF;
    -- The locks before the slots are looked up: a slot another writer of the stylist adds
    -- is then committed and seen here, or its own recount comes after this commit.
    PERFORM scheduler.lock_stylists(stylists);
    PERFORM scheduler.recount_free_runs(
        array_agg(stylist_id), array_agg(location_id), array_agg(local_date))
    FROM (
        SELECT DISTINCT sl.stylist_id, sl.location_id, sl.local_date
        FROM unnest(stylists, starts, ends) AS t(stylist_id, start_at, end_at)
        JOIN scheduler.slot_instances sl
          ON sl.stylist_id = t.stylist_id AND sl.start_at < t.end_at AND sl.end_at > t.start_at
         AND sl.start_at > t.start_at - interval '1 day'
    ) k;
END $$;

-- Only confirmed bookings are in the runs: the dates of the slots a confirmed booking
-- overlaps (at any location: one stylist) before and after the statement.
CREATE OR REPLACE FUNCTION scheduler.bookings_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM scheduler.recount_free_runs_over(
            array_agg(stylist_id), array_agg(start_at), array_agg(end_at))
        FROM new_bookings WHERE status = 'confirmed';
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM scheduler.recount_free_runs_over(
            array_agg(stylist_id), array_agg(start_at), array_agg(end_at))
        FROM old_bookings WHERE status = 'confirmed';
    ELSE
        PERFORM scheduler.recount_free_runs_over(
            array_agg(t.stylist_id), array_agg(t.start_at), array_agg(t.end_at))
        FROM old_bookings o JOIN new_bookings n ON n.id = o.id,
        LATERAL (VALUES (o.stylist_id, o.start_at, o.end_at),
                        (n.stylist_id, n.start_at, n.end_at)) AS t(stylist_id, start_at, end_at)
        WHERE (o.status = 'confirmed' OR n.status = 'confirmed')
          AND (o.status, o.stylist_id, o.start_at, o.end_at)
              IS DISTINCT FROM (n.status, n.stylist_id, n.start_at, n.end_at);
    END IF;
    RETURN NULL;
END $$;

-- Every run recounted: after a TRUNCATE (which fires no DELETE triggers), or by an operator.
CREATE OR REPLACE FUNCTION scheduler.recount_all_free_runs() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM scheduler.free_runs;
    PERFORM scheduler.recount_free_runs(
        array_agg(stylist_id), array_agg(location_id), array_agg(local_date))
    FROM (SELECT DISTINCT stylist_id, location_id, local_date FROM scheduler.slot_instances) k;
END $$;

CREATE OR REPLACE FUNCTION scheduler.free_runs_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM scheduler.recount_all_free_runs();
    RETURN NULL;
END $$;
"""
    )
    for name, table, ddl in _triggers():
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON scheduler.{table}; {ddl}")
    # What was there before this migration.
    op.execute("SELECT scheduler.recount_all_free_runs()")


# (table, its transition tables' stem, the function recounting after a change)
_WATCHED = (
    ("slot_instances", "slots", "slots_changed"),
    ("bookings", "bookings", "bookings_changed"),
)
_EVENTS = (
    ("INSERT", "inserted", "REFERENCING NEW TABLE AS new_{rows}"),
    ("UPDATE", "updated", "REFERENCING OLD TABLE AS old_{rows} NEW TABLE AS new_{rows}"),
    ("DELETE", "deleted", "REFERENCING OLD TABLE AS old_{rows}"),
)


def _triggers() -> list[tuple[str, str, str]]:
    """(name, table, CREATE TRIGGER) of every trigger keeping the runs."""
    out = []
    for table, rows, function in _WATCHED:
        for event, done, referencing in _EVENTS:
            name = f"free_runs_{rows}_{done}"
            ddl = (
                f"CREATE TRIGGER {name} AFTER {event} ON scheduler.{table}"
                f" {referencing.format(rows=rows)}"
                f" FOR EACH STATEMENT EXECUTE FUNCTION scheduler.{function}()"
            )
            out.append((name, table, ddl))
        name = f"free_runs_{rows}_truncated"
        ddl = (
            f"CREATE TRIGGER {name} AFTER TRUNCATE ON scheduler.{table}"
            " FOR EACH STATEMENT EXECUTE FUNCTION scheduler.free_runs_truncated()"
        )
        out.append((name, table, ddl))
    return out


def downgrade() -> None:
    for name, table, _ in _triggers():
        op.execute(f"DROP TRIGGER {name} ON scheduler.{table}")
    op.execute(
        """
DROP FUNCTION scheduler.free_runs_truncated();
DROP FUNCTION scheduler.recount_all_free_runs();
DROP FUNCTION scheduler.bookings_changed();
DROP FUNCTION scheduler.slots_changed();
DROP FUNCTION scheduler.recount_free_runs_over(uuid[], timestamptz[], timestamptz[]);
DROP FUNCTION scheduler.recount_free_runs(uuid[], uuid[], date[]);
DROP FUNCTION scheduler.lock_stylists(uuid[]);
DROP TABLE scheduler.free_runs;
"""
    )
