// An async handler: roma settles the returned promise before it answers.
//
//   roma run examples/async.js --input '["apple", "kiwi"]'    # prints {"total":90,"prices":[50,40]}
//
// `lookup` stands in for an asynchronous host call (see examples/udf.js and
// crates/roma/examples/udf.rs for real host functions).
const lookup = (key) => Promise.resolve({ price: key.length * 10 });

async function Handler(items) {
  const prices = await Promise.all(items.map(async (key) => (await lookup(key)).price));
  console.log(`priced ${items.length} items`);
  return { total: prices.reduce((a, b) => a + b, 0), prices };
}
