CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    amount_cents BIGINT NOT NULL CHECK (amount_cents >= 0),
    placed_at TIMESTAMP DEFAULT current_timestamp
);
CREATE INDEX orders_by_customer ON orders (customer_id);
