-- Deliveries whose body is not a shape we know: few, and looked for on every events round.
-- A partial index holds only them, so finding none does not read the whole pending backlog,
-- and an ordinary delivery's insert does not touch it.
CREATE INDEX inbox_unusable ON inbox(state) WHERE shape != 'ok';
