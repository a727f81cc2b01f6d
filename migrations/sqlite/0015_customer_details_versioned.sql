-- How recent a customer's details (phone, names) are, in the store's time: the `updated_at` of
-- the customer record they came from, or, for details an order brought without one (a guest
-- checkout), when that order was placed. Details older than those held are not written, so a
-- late customers/update, or an order paid later that still carries its checkout's details, no
-- longer puts back what the store has since changed. NULL for records kept before this
-- migration: the first details to arrive set it.
ALTER TABLE customers ADD COLUMN details_as_of TEXT;
