-- Orders get a status; existing rows are 'placed'.
ALTER TABLE orders ADD COLUMN status VARCHAR DEFAULT 'placed';
