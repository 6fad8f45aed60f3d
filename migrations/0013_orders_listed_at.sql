-- When the courier's order list (fetch_tracking) last showed the order. The
-- list carries the same status a per-order poll reads, so the scheduler's
-- refresh tick skips orders the list showed within its interval: after a
-- list of 100,000 orders, polling each of them again asks the courier for
-- what we already know.
ALTER TABLE orders ADD COLUMN listed_at timestamptz;
