// Runs once, at MongoDB's first start (docker-entrypoint-initdb.d, as the root user): the audit job
// gets its own user, allowed to read and write its database only, instead of the root account.
const database = process.env.MONGO_APP_DATABASE || "llm_audit";
db.getSiblingDB(database).createUser({
  user: process.env.MONGO_APP_USER,
  pwd: process.env.MONGO_APP_PASSWORD,
  roles: [{ role: "readWrite", db: database }],
});
